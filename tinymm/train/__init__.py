"""Training: each file one job, the arrows one way.

    tinymm/config.py        TrainConfig: every setting of a run (no model, no training)
    tinymm/models/build.py  the models a config describes, and loading them from a run folder
    bookkeeping.py          what every stage's loop shares: resume, log, finite check, checkpoint, time
    clip.py                 the CLIP stage: train_clip, top to bottom
    decoders.py             the caption and image decoder stages, and their evaluation
    judge.py                the second CLIP that grades the decoders
    pipeline.py             the whole run (python -m tinymm train): stages, metrics, figures
    run_folder.py           the run folder: names inside runs/, one writer (.lock), stale temp files

Inference (``tinymm.run``) uses config and builders only, never this package. The names
below are the ones lessons and tests import (``from tinymm.train import TrainConfig, ...``).
"""
from ..config import QUICK, STRUCTURAL, TrainConfig, default_run_dir, evaluation_sets, judge_config, read_config
from ..models.build import (build_caption_decoder, build_dual_encoder, build_image_decoder, encoders_of,
                            load_decoders, load_dual_encoder)
from .bookkeeping import Progress, StageBook, TrainingDiverged, log_line, write_json
from .clip import alignment_loss, evaluate_dual_encoder, train_batch, train_clip
from .decoders import (CAPTION_STREAM, IMAGE_STREAM, centre_scenes, decoder_batch, evaluate_caption_decoder,
                       evaluate_image_decoder, frozen, one_object_generation, train_caption_decoder,
                       train_image_decoder)
from .judge import train_judge
from .pipeline import (continued_config, lesson12_run, load_or_train, prepare_run_dir, run_training,
                       train_decoder_stages)
