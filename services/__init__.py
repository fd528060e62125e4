import warnings

# The Nameko 2.14 stack is pinned on purpose (ENGINEERING.md): eventlet 0.41 warns on import
# that it is in maintenance mode and nameko's CLI module imports pkg_resources (hence
# setuptools<81). Neither warning says anything an operator can act on.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated")
