"""The configuration file of ``trainonce prune``: YAML or TOML, checked before anything runs.

A run is described in five sections (``model``, ``data``, ``train``, ``optimizer``,
``pruning``) plus ``output``. Every key is checked here, so a typo or a wrong type is one line
that names the key and the file, never a traceback halfway through training. ``EXAMPLE`` is the
documented template (``trainonce prune --example`` prints it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from trainonce.errors import TrainonceError

EXAMPLE = """\
# trainonce prune config (YAML; a .toml file with the same sections works too)
model:
  factory: zoo.resnet:resnet18_cifar   # MODULE:FUNCTION returning a model or (model, example_inputs)
  kwargs: {num_classes: 10}            # keyword arguments of the factory
  input_shape: null                    # example input shape; default: one test sample of the data
data:
  dataset: fashion-mnist               # digits | fashion-mnist | MODULE:FUNCTION returning (train, test)
  path: null                           # fashion_mnist.npz or its directory (default: search known places)
  batch_size: 128
train:
  epochs: 3
  seed: 0
  threads: 2                           # CPU threads
  loss: cross_entropy                  # or MODULE:FUNCTION(outputs, targets) -> scalar loss
  checkpoint_every: 0                  # steps between checkpoints; 0 = at the end of every epoch
optimizer:
  name: SGD                            # any torch.optim class
  lr: 0.1
  kwargs: {momentum: 0.9, nesterov: true, weight_decay: 0.0001}
  scheduler: cosine                    # cosine | constant (stepped every optimizer step)
pruning:
  method: HESSO                        # HESSO | HESSOCRIC | DHSPG | H2SPG (H2SPG needs mode: erase)
  mode: prune                          # prune (channels, heads) | erase (whole operators)
  target_flops: 0.5                    # one of target_sparsity / target_flops / target_params
  warmup: 0.1                          # fraction of the run before pruning starts
  window: 0.3                          # fraction of the run over which groups are driven to zero
  periods: 10
  exclude: []                          # module names whose channels must stay
  options: {}                          # further keyword arguments of the method
output: runs/resnet18-fashion          # checkpoint, compact model and report go here
"""

TARGETS = ("target_sparsity", "target_flops", "target_params")
METHODS = ("HESSO", "HESSOCRIC", "DHSPG", "H2SPG")
SCHEDULERS = ("cosine", "constant")


@dataclass(frozen=True)
class ModelConfig:
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_shape: list[int] | None = None


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    path: str | None = None
    batch_size: int = 128


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    seed: int = 0
    threads: int = 1
    loss: str = "cross_entropy"
    checkpoint_every: int = 0


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "SGD"
    lr: float = 0.1
    kwargs: dict[str, Any] = field(default_factory=dict)
    scheduler: str = "cosine"


@dataclass(frozen=True)
class PruningConfig:
    method: str = "HESSO"
    mode: str = "prune"
    target_sparsity: float | None = None
    target_flops: float | None = None
    target_params: float | None = None
    warmup: float = 0.1
    window: float = 0.3
    periods: int = 10
    exclude: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> dict[str, float]:
        """The one target given, as the optimizer's keyword argument."""
        return {name: value for name in TARGETS if (value := getattr(self, name)) is not None}


@dataclass(frozen=True)
class PruneConfig:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    optimizer: OptimizerConfig
    pruning: PruningConfig
    output: str
    source: str = ""

    def fingerprint(self) -> str:
        """Hash of everything that shapes the training trajectory (a resume must match it)."""
        settings = asdict(self)
        settings.pop("source")
        settings.pop("output")
        settings["train"].pop("checkpoint_every")
        settings["train"].pop("threads")
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
                             "optimizer": OptimizerConfig, "pruning": PruningConfig}


def load_config(path: str | Path) -> PruneConfig:
    """Read and check ``path`` (``.yaml``/``.yml``/``.toml``)."""
    path = Path(path)
    if not path.is_file():
        raise TrainonceError(f"config file {path} does not exist (trainonce prune --example prints a template)")
    raw = _read(path)
    if not isinstance(raw, Mapping):
        raise TrainonceError(f"{path}: expected sections model, data, train, optimizer, pruning, output at the top level")
    return parse_config(raw, str(path))


def parse_config(raw: Mapping[str, Any], source: str = "<config>") -> PruneConfig:
    """Build the typed config; every error names the key, what was wrong, and the file."""
    unknown = set(raw) - set(SECTIONS) - {"output"}
    if unknown:
        raise TrainonceError(f"{source}: unknown section {sorted(unknown)[0]!r} (known: {', '.join([*SECTIONS, 'output'])})")
    for required in ("model", "data", "output"):
        if required not in raw:
            raise TrainonceError(f"{source}: missing '{required}' (trainonce prune --example prints a template)")
    sections = {name: _section(cls, raw.get(name) or {}, name, source) for name, cls in SECTIONS.items()}
    output = raw["output"]
    if not isinstance(output, str) or not output:
        raise TrainonceError(f"{source}: 'output' must be a directory name, got {output!r}")
    config = PruneConfig(output=output, source=source, **sections)
    _check_values(config, source)
    return config


def _read(path: Path) -> Any:
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib  # Python 3.11+

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            return _load_yaml(text)
    except ImportError as error:
        raise TrainonceError(f"cannot read {path.name}: {error} (YAML needs PyYAML, TOML Python 3.11+)") from None
    except Exception as error:  # both parsers raise their own types; the message has the line
        raise TrainonceError(f"{path} is not valid {suffix.lstrip('.').upper()}: {str(error).splitlines()[0]}") from None
    raise TrainonceError(f"{path}: config files end in .yaml, .yml or .toml")


def _load_yaml(text: str) -> Any:
    """PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string; read it as 1.2 does, a number."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
        list("-+0123456789."),
    )
    return yaml.load(text, Loader=Loader)


def _section(cls: type, values: Any, name: str, source: str) -> Any:
    if not isinstance(values, Mapping):
        raise TrainonceError(f"{source}: '{name}' must be a mapping of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclass_fields(cls)}
    for key in values:
        if key not in fields:
            raise TrainonceError(f"{source}: unknown key '{name}.{key}' (known: {', '.join(fields)})")
    missing = [key for key, f in fields.items() if _required(f) and key not in values]
    if missing:
        raise TrainonceError(f"{source}: missing '{name}.{missing[0]}'")
    for key, value in values.items():
        _check_type(f"{name}.{key}", value, str(fields[key].type), source)
    return cls(**{key: _number(value, str(fields[key].type)) for key, value in values.items()})


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


EXPECTED = {"int": (int,), "float": (int, float), "str": (str,), "list": (list,), "dict": (dict,)}
WORDS = {"int": "an integer", "float": "a number", "str": "a string", "list": "a list", "dict": "a mapping"}


def _check_type(key: str, value: Any, annotation: str, source: str) -> None:
    """Annotations are strings (``from __future__``); their first word is the type to check."""
    if value is None and "None" in annotation:
        return
    kind = annotation.split("[")[0].split(" ")[0]
    allowed = EXPECTED.get(kind)
    if allowed is None or (isinstance(value, allowed) and not isinstance(value, bool)):
        return
    if kind == "float" and isinstance(value, str):  # YAML reads 1e-4 as a string
        try:
            float(value)
            return
        except ValueError:
            pass
    raise TrainonceError(f"{source}: '{key}' must be {WORDS[kind]}, got {value!r}")


def _number(value: Any, annotation: str) -> Any:
    return float(value) if annotation.startswith("float") and value is not None else value


def _check_values(config: PruneConfig, source: str) -> None:
    p, t, o = config.pruning, config.train, config.optimizer
    checks = [
        (p.method in METHODS, f"'pruning.method' must be one of {', '.join(METHODS)}, got {p.method!r}"),
        (p.mode in ("prune", "erase"), f"'pruning.mode' must be prune or erase, got {p.mode!r}"),
        (len(p.target) == 1, f"give exactly one of {', '.join('pruning.' + n for n in TARGETS)}"),
        (all(0.0 < v < 1.0 for v in p.target.values()), f"pruning targets are fractions in (0, 1), got {p.target}"),
        (p.method != "H2SPG" or p.mode == "erase", "'pruning.method: H2SPG' erases operators: set 'pruning.mode: erase'"),
        (p.periods >= 1, f"'pruning.periods' must be at least 1, got {p.periods}"),
        (o.scheduler in SCHEDULERS, f"'optimizer.scheduler' must be one of {', '.join(SCHEDULERS)}, got {o.scheduler!r}"),
        (o.lr > 0, f"'optimizer.lr' must be positive, got {o.lr}"),
        (t.epochs >= 1, f"'train.epochs' must be at least 1, got {t.epochs}"),
        (t.threads >= 1, f"'train.threads' must be at least 1, got {t.threads}"),
        (t.checkpoint_every >= 0, f"'train.checkpoint_every' must be >= 0, got {t.checkpoint_every}"),
        (config.data.batch_size >= 1, f"'data.batch_size' must be at least 1, got {config.data.batch_size}"),
        (":" in config.model.factory, f"'model.factory' must be MODULE:FUNCTION, got {config.model.factory!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainonceError(f"{source}: {message}")
