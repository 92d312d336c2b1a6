"""pass@k and the statistics of the reasoning boundary, as pure functions over per-problem (n, c).

- `pairs`: a counts table's models aligned on their common problems (`paired`), the input of the rest;
- `estimate`: the unbiased pass@k for every k <= n (`pass_at_k`, `curves`, `mean_curve`);
- `compare`: models on the same problems: paired bootstrap curves, pointwise and simultaneous
  (sup-t) bands of the difference, the crossover, coverage sets, ΔSE, the verdict, the overview;
- `breadth`: accuracy bins and histograms (Fig. 5), the bin-to-bin transition table, cover@tau;
- `distribution`: past n: the zero-inflated scaled beta-binomial fit, the unsolvable share, `extrapolate`,
  goodness of fit, per-problem posterior draws;
- `project`: bootstrap bands over problems of the extrapolation, the predicted crossover,
  conditional (benchmark-held-fixed) intervals;
- `plan`: the samples per problem a question needs, by simulation from the fits;
- `summary`: the notebooks' recipes: `report` (the k <= n analysis of a pair as one record) and `past`
  (everything past n), shared by notebooks 03, 05 and 06.
"""
from boundary.passk.breadth import (HISTOGRAM_BINS, accuracy_bins, accuracy_histogram, cover, cover_table,
                                    transitions)
from boundary.passk.compare import (Crossover, Curves, bootstrap_curves, bootstrap_indices, coverage, crossover,
                                    first_catch, overview, sampling_efficiency_gap, simultaneous_band, solved,
                                    verdict)
from boundary.passk.estimate import curves, mean_curve, pass_at_k
from boundary.passk.pairs import Unpaired, paired
from boundary.passk.distribution import Fit, Unidentifiable, extrapolate, fit, goodness_of_fit, posterior_draws

__all__ = [
    "HISTOGRAM_BINS", "accuracy_bins", "accuracy_histogram", "cover", "cover_table", "transitions",
    "Crossover", "Curves", "bootstrap_curves", "bootstrap_indices", "coverage", "crossover", "first_catch",
    "overview", "sampling_efficiency_gap", "simultaneous_band", "solved", "verdict",
    "curves", "mean_curve", "pass_at_k", "Unpaired", "paired",
    "Fit", "Unidentifiable", "extrapolate", "fit", "goodness_of_fit", "posterior_draws",
]
from boundary.passk.project import PredictedCrossover, Projection, conditional_intervals, project  # noqa: E402

__all__ += ["PredictedCrossover", "Projection", "conditional_intervals", "project"]
from boundary.passk.plan import Plan, plan  # noqa: E402

__all__ += ["Plan", "plan"]
from boundary.passk.summary import POWERS, TAUS, Past, Report, at_powers, ends, past, report  # noqa: E402

__all__ += ["POWERS", "TAUS", "Past", "Report", "at_powers", "ends", "past", "report"]
