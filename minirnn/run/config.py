"""What a training run depends on: TrainConfig, and the book's runs as presets of it.

TrainConfig is a frozen dataclass, saved in every checkpoint and checked once here, at the
boundary. Its first fields are the model's, inherited from model.ModelConfig (declared and
checked there, once); the rest are the run's. A preset is a plain dict of overrides; explicit options win over it, and a preset's
learning rate goes with its optimizer. How a run is carried out is train.py's business.
"""
import dataclasses
from pathlib import Path
from typing import Optional, Tuple

from .. import checks, text, truncation
from ..backend import DEVICES
from ..batching import SAMPLERS
from ..errors import ConfigError
from ..model import ModelConfig
from ..optim import DEFAULT_LR, OPTIMIZERS, SCHEDULES
from ..truncation import MODES as TRUNCATIONS


@dataclasses.dataclass(frozen=True)
class TrainConfig(ModelConfig):
    """Everything a training run depends on; saved in every checkpoint. Defaults: the book's d2l-v1.

    The model's fields (cell, num_layers, num_hiddens, activation, embed_dim, sigma, init,
    dropout, impl, dtype) come from ModelConfig; `config.model` is that part alone.
    """
    # data
    data: str = 'timemachine'
    encoding: str = 'utf-8'
    preprocess: str = 'letters'
    token: str = 'char'
    max_tokens: Optional[int] = 10000
    min_freq: int = 0          # tokens seen fewer times become <unk> (the book's Vocab min_freq)
    val_fraction: float = 0.0
    num_train_windows: Optional[int] = None   # windows sampler: the book's fixed train/val split
    num_val_windows: Optional[int] = None
    # optimization
    batch_size: int = 32
    num_steps: int = 35
    sampler: str = 'sequential'
    optimizer: str = 'sgd'
    lr: Optional[float] = None       # None: the optimizer's default (optim.DEFAULT_LR); the rate used is kept
    lr_schedule: str = 'constant'    # constant | step | cosine (optim.Schedule)
    lr_decay: Optional[float] = None       # step: factor per decay (default 0.97, char-rnn's)
    lr_decay_every: Optional[int] = None   # step: epochs between decays (default 1)
    lr_decay_after: Optional[int] = None   # step: the first decay ends this epoch (default lr_decay_every)
    warmup_steps: int = 0            # linear warm-up over this many optimizer steps (any schedule)
    weight_decay: float = 0.0        # L2 for sgd and adagrad, decoupled for adam (AdamW); weights only
    bias_lr_mult: float = 1.0        # the cells' biases learn this many times as fast (2: PyTorch's update)
    ema: Optional[float] = None      # decay of a moving average of the weights, which validation,
                                     # best.npz's choice, eval and generate use (optim.Optimizer)
    num_epochs: int = 500
    clip: float = 1.0          # max global gradient norm; 0 disables clipping
    early_stop: Optional[int] = None   # stop after this many epochs without a better val_ppl
    max_minutes: Optional[float] = None  # no epoch starts that would end past this much wall time
    # how far back BPTT reaches (truncation.py)
    truncation: str = 'detach'       # detach (the book) | full | regular | random
    k1: Optional[int] = None         # regular: every k1 steps ...
    k2: Optional[int] = None         # ... backpropagate the last k1 losses k2 steps
    keep_prob: Optional[float] = None  # random: the probability pi that a step passes its gradient back
    max_tape_mb: int = 1024          # full: memory for the kept batches of an epoch
    # feedback during training (none of it changes what is trained)
    eval_every: Optional[int] = None     # validation perplexity every N optimizer steps
    sample_every: Optional[int] = None   # a sampled continuation of the first prefix every N steps
    # device and reproducibility
    device: str = 'cpu'
    seed: int = 0
    threads: Optional[int] = None   # CPU threads splitting each batch (None: every core)
    # text generated after training (None: the start of the text's first line)
    prefixes: Optional[Tuple[str, ...]] = ('time traveller', 'the planet mars i scarcely')
    num_preds: int = 50

    def __post_init__(self):
        super().__post_init__()           # the model's fields
        if self.prefixes is not None:
            object.__setattr__(self, 'prefixes', tuple(self.prefixes))
        for name in ('batch_size', 'num_steps', 'num_epochs'):
            checks.integer(name, getattr(self, name))
        for name in ('max_tokens', 'num_train_windows', 'num_val_windows', 'threads',
                     'early_stop', 'eval_every', 'sample_every'):
            checks.integer(name, getattr(self, name), optional=True)
        for name in ('num_preds', 'seed', 'min_freq', 'warmup_steps'):
            checks.integer(name, getattr(self, name), minimum=0)
        checks.one_of('optimizer', self.optimizer, OPTIMIZERS)
        if self.lr is None:
            object.__setattr__(self, 'lr', DEFAULT_LR[self.optimizer])
        checks.number('lr', self.lr, above=0)
        checks.number('weight_decay', self.weight_decay, minimum=0)
        checks.number('bias_lr_mult', self.bias_lr_mult, above=0)
        checks.number('ema', self.ema, above=0, below=1, optional=True)
        self._check_schedule()
        checks.number('clip', self.clip, minimum=0)
        checks.number('val_fraction', self.val_fraction, minimum=0, below=1)
        for name, allowed in (('sampler', SAMPLERS), ('device', DEVICES),
                              ('preprocess', text.PREPROCESS_MODES), ('token', text.TOKEN_KINDS)):
            checks.one_of(name, getattr(self, name), allowed)
        windows_split = self.num_train_windows is not None or self.num_val_windows is not None
        if windows_split and self.sampler != 'windows':
            raise ConfigError('num_train_windows/num_val_windows apply to the windows sampler only')
        if windows_split and self.val_fraction:
            raise ConfigError('choose either val_fraction or num_train_windows/num_val_windows, not both')
        self._check_truncation()
        checks.number('max_minutes', self.max_minutes, above=0, optional=True)
        for name in ('early_stop', 'eval_every'):
            if getattr(self, name) is not None and not self.validates:
                raise ConfigError(f'{name} needs a validation split: set val_fraction (--val-fraction) '
                                  'or, with the windows sampler, num_val_windows')

    def _check_truncation(self):
        """Each truncation takes its own settings and refuses the others'."""
        checks.one_of('truncation', self.truncation, TRUNCATIONS)
        checks.integer('max_tape_mb', self.max_tape_mb)
        own = {'detach': (), 'full': (), 'regular': ('k1', 'k2'), 'random': ('keep_prob',)}[self.truncation]
        foreign = [n for n in ('k1', 'k2', 'keep_prob') if n not in own and getattr(self, n) is not None]
        if foreign:
            raise ConfigError(f'{", ".join(foreign)} apply to truncation '
                              f'{"regular" if foreign[0] != "keep_prob" else "random"} only, '
                              f'not {self.truncation}')
        if self.truncation == 'full' and self.sampler != 'sequential':
            raise ConfigError('truncation full carries the gradient across batches, which only the '
                              'sequential sampler connects; use sampler sequential')
        truncation.make(self.truncation, k1=self.k1, k2=self.k2, keep_prob=self.keep_prob)   # checks them

    def _check_schedule(self):
        """The step schedule's settings get char-rnn's defaults; other schedules refuse them."""
        checks.one_of('lr_schedule', self.lr_schedule, SCHEDULES)
        step_settings = ('lr_decay', 'lr_decay_every', 'lr_decay_after')
        if self.lr_schedule != 'step':
            given = [name for name in step_settings if getattr(self, name) is not None]
            if given:
                raise ConfigError(f'{", ".join(given)} apply to the step schedule only; '
                                  f'add lr_schedule=step (--lr-schedule step) or drop them')
            return
        if self.lr_decay is None:
            object.__setattr__(self, 'lr_decay', 0.97)
        if self.lr_decay_every is None:
            object.__setattr__(self, 'lr_decay_every', 1)
        if self.lr_decay_after is None:
            object.__setattr__(self, 'lr_decay_after', self.lr_decay_every)
        checks.number('lr_decay', self.lr_decay, above=0)
        if self.lr_decay > 1:
            raise ConfigError(f'lr_decay must be in (0, 1], got {self.lr_decay!r}')
        checks.integer('lr_decay_every', self.lr_decay_every)
        checks.integer('lr_decay_after', self.lr_decay_after, minimum=0)

    @classmethod
    def from_preset(cls, name, **overrides):
        """The preset `name` (PRESETS: d2l-v1, d2l-v2, their gated and deep variants, tm-rnn,
        tm-lstm2, their regularised tm-rnn-reg and tm-lstm2-awd, own-text) with `overrides` on
        top, as `train --preset name` builds it."""
        return make_config(name, **overrides)

    @property
    def model(self):
        """The model's part of this configuration, a ModelConfig."""
        return ModelConfig.of(self)

    @property
    def validates(self):
        """Whether the run holds out data for validation (a val_fraction tail or validation windows)."""
        if self.num_train_windows is not None:
            return bool(self.num_val_windows)
        return self.val_fraction > 0

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['prefixes'] = None if self.prefixes is None else list(self.prefixes)
        return d

    @classmethod
    def from_dict(cls, d):
        """A TrainConfig from to_dict() output; keys it does not know are ignored (older runs
        lack the newer fields and get their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# The book's two runs, as overrides of TrainConfig's fields.
PRESETS = {
    # 1st edition, section 8.5: The Time Machine, first 10,000 tokens, sequential partitioning
    'd2l-v1': dict(data='timemachine', max_tokens=10000, batch_size=32, num_steps=35,
                   num_hiddens=512, optimizer='sgd', lr=1.0, num_epochs=500, clip=1.0,
                   sampler='sequential', prefixes=('time traveller', 'the planet mars i scarcely'),
                   num_preds=50),
    # 2nd edition, section 9.5: all windows of 33 characters, 10,000 train / 5,000 validate
    'd2l-v2': dict(data='timemachine', max_tokens=None, batch_size=1024, num_steps=32,
                   num_hiddens=32, optimizer='sgd', lr=1.0, num_epochs=100, clip=1.0,
                   sampler='windows', num_train_windows=10000, num_val_windows=5000,
                   prefixes=('it has',), num_preds=20),
}
# The gated and deep chapters rerun these settings with another cell, width and learning rate.
# 1st edition, sections 9.1-9.3 (GRU, LSTM, deep RNN): H = 256, 500 epochs; lr 1, and 2 for
# the two-layer LSTM. The book's deep run is the concise nn.LSTM, whose default initialisation
# is U(-1/sqrt(H), 1/sqrt(H)); sigma = 1/sqrt(3H) = 0.036 gives our normal init that variance
# (the from-scratch sections use 0.01).
_V1_GATED = dict(PRESETS['d2l-v1'], num_hiddens=256)
PRESETS['d2l-v1-gru'] = dict(_V1_GATED, cell='gru')
PRESETS['d2l-v1-lstm'] = dict(_V1_GATED, cell='lstm')
PRESETS['d2l-v1-deep'] = dict(_V1_GATED, cell='lstm', num_layers=2, lr=2.0, sigma=0.036)
# 2nd edition, sections 10.1-10.3 (LSTM, GRU, deep RNN): the windows split at H = 32; the gated
# cells at lr 4 for 50 epochs; the deep run stacks two of the book's vanilla cells
# (StackedRNNScratch) at lr 2 for 100 epochs.
PRESETS['d2l-v2-gru'] = dict(PRESETS['d2l-v2'], cell='gru', lr=4.0, num_epochs=50)
PRESETS['d2l-v2-lstm'] = dict(PRESETS['d2l-v2'], cell='lstm', lr=4.0, num_epochs=50)
PRESETS['d2l-v2-deep'] = dict(PRESETS['d2l-v2'], cell='rnn', num_layers=2, lr=2.0, num_epochs=100)
# Held-out quality on a CPU (benchmarks/quality.py): the whole of The Time Machine, its last 10%
# held out, an embedding in front, PyTorch's default initialisation, Adam with a cosine decay to
# 0 over the whole run, dropout between and above the layers, and best.npz kept by validation
# perplexity. Small batches: on 150K training characters more (smaller) steps per epoch help more
# than wider ones. 'tm-rnn' is the book's vanilla cell, 'tm-lstm2' the best model found for
# about 15 minutes of two cores (docs/results.md, "Held-out quality").
_HELD_OUT = dict(data='timemachine', max_tokens=None, val_fraction=0.1, sampler='sequential',
                 optimizer='adam', lr=2e-3, lr_schedule='cosine', clip=1.0, embed_dim=64,
                 num_hiddens=512, init='uniform', num_steps=64,
                 prefixes=('time traveller',), num_preds=50)
# the vanilla cell is fast enough on a CPU to afford H=768 in the 15-minute budget; the wider
# cell overfits sooner, so more dropout, and a moving average of the weights (--ema) to validate
PRESETS['tm-rnn'] = dict(_HELD_OUT, cell='rnn', num_hiddens=768, dropout=0.35, ema=0.999, batch_size=4,
                         num_epochs=30)
PRESETS['tm-lstm2'] = dict(_HELD_OUT, cell='lstm', num_layers=2, dropout=0.4, batch_size=8, num_epochs=8)
# Regularisation through time (docs/regularisation.md): the same two models, their dropout between
# layers replaced or joined by the methods that act on the recurrence. The settings follow the
# papers' character-level runs and short trials on this text (docs/regularisation.md):
# AWD-LSTM's character models (Merity et al. 2018) drop a recurrent weight's entries with 0.2-0.5,
# lock their dropout masks over a sequence (0.1 on the input, 0.1-0.4 between and above the
# layers) and turn AR/TAR off; zoneout's character-level LSTM (Krueger et al. 2016) zones C with
# 0.5 and H with 0.05. More regularised models learn more slowly per epoch, so the LSTM runs more
# epochs (16: 3.675 held out in 13.8 min, against 3.700 at 12 and tm-lstm2's 3.686), still inside
# 15 minutes of the CPU the held-out table was measured on (docs/regularisation.md). The vanilla
# cell underfits under weight drop (0.3 with zoneout 0.1 reached 4.60, 0.1 alone 3.98, against
# tm-rnn's 3.89), so tm-rnn-reg keeps the lightest setting measured.
PRESETS['tm-lstm2-awd'] = dict(PRESETS['tm-lstm2'], dropout=0.0, dropout_input=0.1, dropout_output=0.3,
                               weight_drop=0.5, num_epochs=16)
PRESETS['tm-rnn-reg'] = dict(PRESETS['tm-rnn'], weight_drop=0.1)
# Your own text: what `train --data FILE` without a preset uses. The whole file, every
# character as it is, 5% held out for validation (best.npz, early stopping); a two-layer LSTM
# with the held-out presets' optimiser (Adam; char-rnn's decay of 0.97 per epoch after the 10th),
# small enough to learn a few MB of text in minutes per epoch on a laptop's CPU; the samples after
# training continue the text's own start.
PRESETS['own-text'] = dict(_HELD_OUT, max_tokens=None, preprocess='raw', val_fraction=0.05, cell='lstm',
                           num_layers=2, num_hiddens=256, dropout=0.2, batch_size=32, num_epochs=10,
                           early_stop=3, prefixes=None, num_preds=200,
                           # char-rnn's schedule, which a longer --resume can extend (a cosine can't)
                           lr_schedule='step', lr_decay=0.97, lr_decay_every=1, lr_decay_after=10)
DEFAULT_PRESET = 'd2l-v1'
OWN_TEXT_PRESET = 'own-text'


def absolute_data(data):
    """A registered corpus's name as it is; a file's path made absolute, so that the run's
    checkpoint (--resume, gradcheck and probe --checkpoint) finds it from any directory."""
    from ..corpora import CORPORA
    if data in CORPORA or not Path(data).exists():
        return data
    return str(Path(data).resolve())


def preset_for(data, preset=None):
    """The preset a run starts from: `preset` when named; else own-text for a file of one's own
    (data not a registered corpus), else the book's d2l-v1."""
    from ..corpora import CORPORA
    if preset:
        return preset
    return OWN_TEXT_PRESET if data is not None and data not in CORPORA else DEFAULT_PRESET


def make_config(preset=None, **overrides):
    """TrainConfig from a preset (default d2l-v1) with explicit overrides on top.

    A preset's lr belongs to its optimizer: choosing another optimizer without an lr takes
    that optimizer's default (optim.DEFAULT_LR), not the preset's SGD rate.
    """
    name = checks.one_of('preset', preset or DEFAULT_PRESET, PRESETS)
    values = dict(PRESETS[name])
    if overrides.get('data') is not None:
        overrides['data'] = absolute_data(overrides['data'])
    if 'lr' not in overrides and overrides.get('optimizer', values['optimizer']) != values['optimizer']:
        del values['lr']
    # the preset's window split belongs to its windows sampler: choosing another sampler or a
    # val_fraction drops it (unless the window counts are given explicitly too)
    if overrides.get('sampler', 'windows') != 'windows' or overrides.get('val_fraction'):
        for key in ('num_train_windows', 'num_val_windows'):
            if key not in overrides:
                values.pop(key, None)
    return TrainConfig(**{**values, **overrides})
