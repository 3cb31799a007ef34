"""FusionProxy: real-time infrared-visible fusion distilled from diffusion teacher ensembles."""

from .students import create_student, list_students

__version__ = "0.1.0"

__all__ = ["FusionProxy", "create_student", "list_students", "__version__"]


def __getattr__(name: str):
    # The API pulls in export and I/O helpers; import it only when asked for.
    if name == "FusionProxy":
        from .api import FusionProxy

        return FusionProxy
    raise AttributeError(name)
