"""Importing tfcyclegan without importing TensorFlow until something needs it.

`import tfcyclegan` must be cheap, because the `tfcyclegan` command imports
the package before it parses a flag (`tfcyclegan --help` should not wait
seconds for TensorFlow). It must also register tfcyclegan's Keras classes, so
that `keras.saving.load_model` reloads a saved CycleGAN after `import
tfcyclegan`: Keras only imports the modules of its own packages when it
deserializes, and looks every other class up in its registry.

Both hold with two mechanisms:

- the package's public names resolve on first use (PEP 562 `__getattr__`,
  `lazy_attribute`);
- the modules that define Keras classes are imported as soon as Keras is:
  at once if it already is, else right after `import keras` completes
  (`register_keras_classes_with_keras`, a post-import hook on `keras`).
  If Keras is first imported by a tfcyclegan module, the classes are
  registered as soon as that module has finished importing (importing its
  siblings earlier would find it half made).
"""

import importlib
import importlib.abc
import importlib.util
import sys

KERAS_CLASS_MODULES = (
    "tfcyclegan.legacy",
    "tfcyclegan.layers",
    "tfcyclegan.networks",
    "tfcyclegan.pool",
    "tfcyclegan.schedules",
    "tfcyclegan.models",
    "tfcyclegan.inception",
)
"""The modules that register Keras classes (`register_keras_serializable`)."""


def lazy_attribute(package, exports, name):
    """The public name `name` of `package`, imported from its module on first use."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
    return value


def _importing_tfcyclegan(finished=None):
    """Whether a tfcyclegan module (other than `finished`) is being imported right now."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("tfcyclegan.") and name != finished
    )


def register_keras_classes():
    """Imports the modules defining tfcyclegan's Keras classes (registering them)."""
    for module in KERAS_CLASS_MODULES:
        importlib.import_module(module)


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Post-import hooks: after `keras` is imported, register tfcyclegan's Keras classes.

    If Keras was imported by a tfcyclegan module that is still initialising,
    importing its siblings now would find it half made; the classes are then
    registered as soon as the tfcyclegan module being imported finishes.
    """

    def __init__(self):
        self.pending = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" and not fullname.startswith("tfcyclegan."):
            return None
        for finder in sys.meta_path:  # the real module, found by the other finders
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if fullname == "keras" or self.pending:
                self.register(finished=fullname)

        spec.loader.exec_module = exec_then_register
        return spec

    def register(self, finished=None):
        if _importing_tfcyclegan(finished):
            self.pending = True
            return
        self.pending = False
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        register_keras_classes()


def register_keras_classes_with_keras():
    """Registers tfcyclegan's Keras classes now if Keras is imported, else right after it is."""
    if "keras" in sys.modules and not _importing_tfcyclegan():
        register_keras_classes()
    elif not any(isinstance(finder, _RegisterWithKeras) for finder in sys.meta_path):
        hook = _RegisterWithKeras()
        sys.meta_path.insert(0, hook)
        if "keras" in sys.modules:
            hook.pending = True
