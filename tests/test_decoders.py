"""The decoders: greedy decoding stops at <eos>, the teacher-forcing loss is what the formula
says, top-k sampling stays in the top k, images come out with the right shape and range, every
parameter's gradient passes gradcheck, and a tiny run trains, loads and refuses bad input."""
import dataclasses
import json

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend
from tinymm.__main__ import main
from tinymm.data import ShapesCaptions
from tinymm.gradcheck import gradcheck
from tinymm.models import CaptionDecoder, EmbeddingPrior, ImageDecoder
from tinymm.models.decoders import context_windows
from tinymm.train import TrainConfig, run_training, train_clip, write_json
from tinymm.metrics import pixel_attributes
from tinymm.train import centre_scenes

lesson15, lesson16 = pytest.mark.lesson15, pytest.mark.lesson16

# A tiny vocabulary: <pad> <bos> <eos> <unk> and two words, ids 4 and 5.
PAD, BOS, EOS, A, B = 0, 1, 2, 4, 5


def tiny_caption_decoder(**changes):
    settings = dict(vocab_size=6, embed_dim=4, max_len=6, context=2, token_dim=3, position_dim=2, hidden=5)
    return CaptionDecoder(**{**settings, **changes})


def set_weights(module, **arrays):
    """Overwrite parameters by name (dots for nested names) with the given values."""
    params = dict(module.named_parameters())
    for name, value in arrays.items():
        p = params[name.replace("__", ".")]
        p.data[...] = backend.to_device(np.asarray(value, dtype=p.dtype), p.device)


def position_only_decoder(plan, runner_up=None):
    """A decoder whose next token depends on the position only: plan[t] follows position t.

    Everything is zero except: position t has a one-hot vector, passed through to h1 and h2
    unchanged, and the output layer gives plan[t] a logit of 10 at position t (and
    runner_up[t], if given, a logit of 5).
    """
    max_len = len(plan) + 1
    dec = tiny_caption_decoder(max_len=max_len, position_dim=max_len - 1, hidden=max_len - 1)
    for p in dec.parameters():
        p.data[...] = 0
    k_words = dec.context * 3
    eye = np.eye(max_len - 1)
    context_in = np.zeros((max_len - 1, k_words + max_len - 1))
    context_in[:, k_words:] = eye
    out = np.zeros((6, max_len - 1))
    if runner_up is not None:
        out[runner_up, np.arange(len(plan))] = 5.0
    out[plan, np.arange(len(plan))] = 10.0
    set_weights(dec, position_embedding__weight=eye, context_in__weight=context_in, hidden__weight=eye,
                out__weight=out)
    return dec


# ---------------------------------------------------------------------------------------------
# Caption decoder


@lesson15
def test_context_windows_look_back_k_tokens_with_pad_before_the_start():
    ids = np.array([[1, 4, 5, 2]])
    windows = context_windows(ids, 3, PAD)
    assert windows.shape == (1, 4, 3)
    assert windows[0].tolist() == [[0, 0, 1], [0, 1, 4], [1, 4, 5], [4, 5, 2]]


@lesson15
def test_greedy_decoding_stops_at_eos():
    # emits A, B, then <eos> at position 2; positions 3.. would say A if decoding went on
    dec = position_only_decoder([A, B, EOS, A, A, A])
    ids = dec.generate_ids(np.ones((3, 4), dtype=np.float32))
    assert ids.shape == (3, 7)
    assert ids[0].tolist() == [BOS, A, B, EOS, PAD, PAD, PAD]
    assert (ids == ids[0]).all()
    assert dec.generate_captions(np.ones((1, 4)), _six_word_tokenizer()) == ["w4 w5"]
    with pytest.raises(ValueError, match="tokenizer has 20 tokens"):   # the shapes grammar's
        dec.generate_captions(np.ones((1, 4)), ShapesCaptions("test", n=1, seed=0).tokenizer)


def _six_word_tokenizer():
    from tinymm.data import Tokenizer
    return Tokenizer(["w4", "w5"], max_len=7)


@lesson15
def test_decoding_stops_at_max_len_without_eos_and_never_emits_special_tokens():
    # the plan asks for <pad>, <bos> and <unk> first: they are forbidden, so the runner-up is taken
    dec = position_only_decoder([PAD, BOS, 3, A, B, A], runner_up=[A, B, A, B, A, B])
    ids = dec.generate_ids(np.ones((2, 4), dtype=np.float32))
    assert ids.tolist() == [[BOS, A, B, A, A, B, A]] * 2      # 7 tokens: max_len, no <eos>
    assert dec.generate_ids(np.ones((1, 4), dtype=np.float32), max_len=4).tolist() == [[BOS, A, B, A]]


@lesson15
def test_teacher_forcing_loss_equals_the_hand_computed_value():
    # All weights zero except the output bias: every position predicts the same distribution
    # p = softmax(log [1, 1, 2, 1, 4, 1]) = [1, 1, 2, 1, 4, 1] / 10.
    dec = tiny_caption_decoder(max_len=5).double()
    for p in dec.parameters():
        p.data[...] = 0
    set_weights(dec, out__bias=np.log([1, 1, 2, 1, 4, 1]))
    tokens = np.array([[BOS, A, B, EOS, PAD],     # targets A, B, <eos> (the pad is ignored)
                       [BOS, A, EOS, PAD, PAD]])  # targets A, <eos>
    loss = dec.loss(np.zeros((2, 4)), tokens).item()
    by_hand = -(np.log(0.4) + np.log(0.1) + np.log(0.2) + np.log(0.4) + np.log(0.2)) / 5
    assert loss == pytest.approx(by_hand, rel=1e-12)


@lesson15
def test_teacher_forcing_matches_a_plain_numpy_forward_and_is_causal():
    tm.manual_seed(3)
    dec = tiny_caption_decoder(max_len=6).double()
    w = {name: backend.to_numpy(p.data) for name, p in dec.named_parameters()}
    e = np.random.default_rng(0).standard_normal((2, 4))
    ids = np.array([[BOS, A, B, A, EOS], [BOS, B, EOS, PAD, PAD]])
    logits = backend.to_numpy(dec(e, ids).data)

    def relu(x):
        return np.maximum(x, 0)

    for n in range(2):
        for t in range(5):
            window = [ids[n, j] if j >= 0 else PAD for j in range(t - 1, t + 1)]   # the last k=2 tokens
            x = np.concatenate([w["token_embedding.weight"][window].ravel(), w["position_embedding.weight"][t]])
            h1 = relu(w["context_in.weight"] @ x + w["image_in.weight"] @ e[n] + w["image_in.bias"])
            h2 = relu(w["hidden.weight"] @ h1 + w["hidden.bias"])
            np.testing.assert_allclose(logits[n, t], w["out.weight"] @ h2 + w["out.bias"], rtol=1e-12)
    changed = ids.copy()
    changed[:, 3:] = A                        # later tokens never change earlier predictions
    np.testing.assert_array_equal(backend.to_numpy(dec(e, changed).data)[:, :3], logits[:, :3])


@lesson15
def test_top_k_sampling_draws_only_from_the_top_k():
    dec = tiny_caption_decoder(max_len=3)
    for p in dec.parameters():
        p.data[...] = 0
    set_weights(dec, out__bias=[0.0, 0.0, 1.0, 0.0, 3.0, 2.5])  # ranking: A(4), B(5), <eos>(2)
    e = np.zeros((4000, 4), dtype=np.float32)
    first = dec.generate_ids(e, top_k=2, rng=0)[:, 1]
    assert set(first.tolist()) == {A, B}
    share_a = np.mean(first == A)   # softmax over the top 2: e^3 / (e^3 + e^2.5) = 0.622
    assert share_a == pytest.approx(1 / (1 + np.exp(-0.5)), abs=0.03)
    assert (dec.generate_ids(e[:5], top_k=1)[:, 1] == A).all()   # top-1 sampling is greedy
    wide = dec.generate_ids(e, top_k=3, rng=1)[:, 1]
    assert set(wide.tolist()) == {A, B, EOS}
    with pytest.raises(ValueError, match="top_k"):
        dec.generate_ids(e[:1], top_k=0)


@lesson15
def test_caption_decoder_gradcheck_every_parameter():
    tm.manual_seed(1)
    dec = tiny_caption_decoder().double()
    e = tm.tensor(np.random.default_rng(1).standard_normal((2, 4)), requires_grad=True)
    ids = np.array([[BOS, A, B, EOS, PAD], [BOS, B, A, A, EOS]])
    params = [p for _, p in dec.named_parameters()]
    report = gradcheck(lambda *inputs: dec(e, ids), [e] + params, name="CaptionDecoder")
    assert len(report.checks) == 1 + len(params) and report.passed
    # the loss itself (softmax cross-entropy with ignored padding) through the same graph
    gradcheck(lambda *inputs: dec.loss(e, np.concatenate([ids, np.zeros((2, 1), int)], axis=1)), [e] + params)


@lesson15
def test_caption_decoder_rejects_bad_embeddings():
    dec = tiny_caption_decoder()
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        dec.generate_ids(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="no embeddings"):
        dec.generate_ids(np.zeros((0, 4), dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Image decoder and prior


@lesson16
def test_generate_returns_images_of_the_right_shape_and_range():
    tm.manual_seed(2)
    dec = ImageDecoder(embed_dim=8, channels=(8, 4, 4), prior_hidden=8)
    emb = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32) * 5
    for images in (dec.generate_images(emb), dec.generate_images(emb, use_prior=False), dec.decode(emb)):
        assert images.shape == (3, 3, 32, 32) and images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() <= 1.0
    with pytest.raises(ValueError, match=r"shape \(N, 8\)"):
        dec.generate_images(np.zeros((3, 7), dtype=np.float32))


@lesson16
def test_image_decoder_gradcheck_every_parameter():
    tm.manual_seed(4)
    dec = ImageDecoder(embed_dim=3, channels=(2, 2, 2), prior_hidden=3, embed_hidden=0, start_size=4).double()
    e = tm.tensor(np.random.default_rng(2).standard_normal((2, 3)), requires_grad=True)
    params = dec.pixel_parameters()
    # eps 1e-5: the dark start (sigmoid near 0.05) makes these gradients small, ~1e-4
    report = gradcheck(lambda *inputs: dec(e), [e] + params, eps=1e-5, name="ImageDecoder")
    assert len(report.checks) == 1 + len(params) == 1 + 8


@lesson16
@pytest.mark.parametrize("start_size", [4, 8])
def test_image_decoder_with_a_hidden_layer_before_the_first_map_gradchecks(start_size):
    # embed_hidden adds a Linear + ReLU between the embedding and the first map: 2 more parameters.
    # A fixed seed, like every whole-model check: with 6,144 outputs behind a dozen ReLUs, some
    # seeds put a ReLU's input within eps of its kink, where central differences are wrong.
    tm.manual_seed(15)
    dec = ImageDecoder(embed_dim=3, channels=(2, 2, 2), prior_hidden=3, embed_hidden=5, start_size=start_size).double()
    params = dec.pixel_parameters()
    side = start_size * start_size
    assert [tuple(p.shape) for p in params][:4] == [(5, 3), (5,), (2 * side, 5), (2 * side,)]
    e = tm.tensor(np.random.default_rng(15).standard_normal((2, 3)), requires_grad=True)
    report = gradcheck(lambda *inputs: dec(e), [e] + params, eps=1e-5, name="ImageDecoder(embed_hidden)")
    assert len(report.checks) == 1 + len(params) == 1 + 10
    assert dec.decode(np.zeros((2, 3))).shape == (2, 3, 32, 32)


def test_image_decoder_default_first_map_and_the_layout_of_older_runs():
    # the default: a hidden layer of 256, then an 8×8 map and two upsamplings
    new = ImageDecoder()
    assert (new.embed_hidden, new.start_size, new.fc.weight.shape) == (256, 8, (64 * 8 * 8, 256))
    assert sum(isinstance(layer, tm.nn.Upsample) for layer in new.blocks) == 2
    # runs saved before: one Linear to a 4×4 map and three upsamplings, the same parameter names
    old = ImageDecoder(embed_hidden=0, start_size=4)
    assert old.fc.weight.shape == (64 * 4 * 4, 64) and not hasattr(old, "fc_hidden")
    assert sum(isinstance(layer, tm.nn.Upsample) for layer in old.blocks) == 3
    assert [name for name, _ in old.named_parameters()][:4] == ["fc.weight", "fc.bias", "blocks.1.weight", "blocks.1.bias"]
    for bad in (-1, 2.5, "8"):
        with pytest.raises(ValueError, match="embed_hidden must be a whole number >= 0"):
            ImageDecoder(embed_dim=3, channels=(2, 2, 2), embed_hidden=bad)
    with pytest.raises(ValueError, match="start_size .* must be 4 or 8, got 16"):
        ImageDecoder(embed_dim=3, channels=(2, 2, 2), start_size=16)


@lesson16
def test_image_decoder_with_a_hidden_32x32_layer_gradchecks_and_draws_32x32():
    # a fourth width adds a conv + ReLU at 32×32 before the conv to 3 channels: 2 more parameters
    tm.manual_seed(4)
    dec = ImageDecoder(embed_dim=3, channels=(2, 2, 2, 3), prior_hidden=3, embed_hidden=0, start_size=4).double()
    assert [tuple(p.shape) for p in dec.pixel_parameters()][-4:] == [(3, 2, 3, 3), (3,), (3, 3, 3, 3), (3,)]
    e = tm.tensor(np.random.default_rng(2).standard_normal((2, 3)), requires_grad=True)
    params = dec.pixel_parameters()
    report = gradcheck(lambda *inputs: dec(e), [e] + params, eps=1e-5, name="ImageDecoder(4 widths)")
    assert len(report.checks) == 1 + len(params) == 1 + 10
    images = dec.decode(np.random.default_rng(3).standard_normal((4, 3)))
    assert images.shape == (4, 3, 32, 32) and 0.0 <= images.min() and images.max() <= 1.0
    # it starts from the dark picture, like the three-width decoder
    assert np.all(np.abs(dec.blocks[-1].bias.numpy() + 3.0) < 1e-12)
    for bad in ((2, 2), (2, 2, 2, 2, 2)):
        with pytest.raises(ValueError, match="3 widths .* or 4"):
            ImageDecoder(embed_dim=3, channels=bad)


@lesson16
def test_prior_gradcheck_every_parameter_and_unit_outputs():
    tm.manual_seed(5)
    prior = EmbeddingPrior(embed_dim=4, hidden=5).double()
    t = tm.tensor(np.random.default_rng(3).standard_normal((3, 4)), requires_grad=True)
    params = list(prior.parameters())
    gradcheck(lambda *inputs: prior(t), [t] + params, name="EmbeddingPrior")
    np.testing.assert_allclose(np.linalg.norm(prior(t).numpy(), axis=1), 1.0, rtol=1e-12)


@lesson16
def test_image_decoder_learns_to_draw_a_fixed_batch():
    """Overfit 8 centred scenes from 8 fixed embeddings: the pixel loss must fall far below
    the loss of the dark starting picture."""
    tm.manual_seed(6)
    ds = ShapesCaptions("train", n=8, seed=11)
    target = tm.tensor(centre_scenes(ds.images, ds.scenes))
    emb = np.random.default_rng(4).standard_normal((8, 16)).astype(np.float32)
    dec = ImageDecoder(embed_dim=16, channels=(16, 8, 8), prior_hidden=8)
    opt = tm.optim.Adam(dec.pixel_parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = tm.functional.mse_loss(dec(emb), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0]


@lesson16
def test_pixel_check_reads_real_scenes_and_centring_moves_objects_to_the_middle():
    ds = ShapesCaptions("test", n=300, seed=3)
    one = ds.scenes["n_objects"] == 1
    stats = pixel_attributes(ds.images[one])
    assert np.mean(stats["colour"] == ds.scenes["colour"][one, 0]) == 1.0
    assert np.mean(stats["large"] == (ds.scenes["size"][one, 0] == 1)) == 1.0
    centred = pixel_attributes(centre_scenes(ds.images, ds.scenes)[one])
    xy = centred["centroid"][np.arange(one.sum()), centred["colour"]]
    # pixels are numbered 0..31, so the middle is 15.5; a triangle's centroid sits r/3 (up to
    # 2 pixels) below the centre of its box
    assert np.abs(xy - 15.5).max() < 2.5
    assert np.abs(stats["centroid"][np.arange(one.sum()), stats["colour"]] - 15.5).max() > 8


# ---------------------------------------------------------------------------------------------
# A tiny run, end to end


TINY = dict(steps=8, batch_size=32, embed_dim=16, channels=(4, 8), image_hidden=32, text_width=32,
            log_every=5, checkpoint_every=100, eval_size=40, warmup_steps=2, lr=3e-3,
            caption_steps=40, caption_batch_size=32, caption_hidden=32, caption_lr=1e-2,
            image_steps=20, image_batch_size=16, image_channels=(8, 4, 4), image_lr=3e-3, prior_hidden=16, prior_lr=5e-3,
            judge_steps=4, judge_batch_size=32,
            augment="", image_encoder="plain")   # the plain CLIP recipe: what these decoder tests were sized for


def tiny_clip_run(run_dir, **changes):
    """A run folder holding only a (barely) trained tiny CLIP, as the clip stage leaves it,
    without its evaluation and figures (they are tested in test_train.py and cost seconds)."""
    config = TrainConfig(**{"device": tm.get_default_device(), **TINY, **changes})  # the device under test
    train_clip(config, run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    return config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny CLIP, then `train --stages caption,image` on its folder."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny-decoders"
    config = tiny_clip_run(run_dir)
    metrics = run_training(dataclasses.replace(config, stages=("caption", "image")), run_dir)
    # config.json still records the dual encoder's stage next to the two decoders
    assert json.loads((run_dir / "config.json").read_text())["stages"] == ["clip", "caption", "image"]
    return run_dir, metrics


@lesson15
@lesson16
def test_tiny_run_trains_both_decoders_and_reports_them(tiny_run):
    run_dir, metrics = tiny_run
    caption = tm.load(run_dir / "caption.npz")["history"]
    image = tm.load(run_dir / "image.npz")["history"]
    assert caption["loss"][-1] < 0.75 * caption["loss"][0] and caption["loss"][-1] < 0.5 * np.log(20)
    assert image["prior_loss"][-1] < 0.8 * image["prior_loss"][0]
    assert np.isfinite(image["loss"]).all()   # (the pixel decoder's learning: the test below)
    saved = json.loads((run_dir / "metrics.json").read_text())
    for split in ("test", "compositional"):
        for key in ("caption_exact_one", "caption_token_acc_two", "caption_roundtrip", "image_psnr",
                    "image_colour_one", "image_roundtrip_one", "gap_cos_text", "gap_cos_prior"):
            assert key in saved[split], (split, key)
    assert "gen48_colour" in saved["test"] and saved["train"]["caption_seconds"] > 0
    for name in ("judge/clip.npz", "captions.png", "generated.png", "decoders_loss.png", "modality_gap.png"):
        assert (run_dir / name).exists(), name


@lesson15
@lesson16
def test_tiny_run_captions_and_generates_and_refuses_bad_input(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    run = tm.load_run(run_dir)
    images = run.gallery.images[:3]
    captions = run.caption(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    generated = run.generate(["a large blue square", "a small red circle left of a large green cross"])
    assert generated.shape == (2, 3, 32, 32) and 0.0 <= generated.min() <= generated.max() <= 1.0
    with pytest.raises(ValueError, match="empty"):
        run.generate([])
    with pytest.raises(ValueError, match="not in the vocabulary: purple"):
        run.generate(["a large purple square"])
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        run.caption(np.zeros((2, 3, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="no images"):
        run.caption(np.zeros((0, 3, 32, 32), dtype=np.float32))

    from PIL import Image
    path = tmp_path / "scene.png"
    Image.fromarray((images[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(path)
    assert main(["caption", "--run", str(run_dir), str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    assert main(["generate", "--run", str(run_dir), "a large blue square", "--out", str(grid)]) == 0
    assert grid.exists()
    assert main(["generate", "--run", str(run_dir), "a large purple square", "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()
    assert "purple" in capsys.readouterr().err


@lesson15
@lesson16
def test_run_without_decoders_says_which_stage_to_train(tmp_path):
    tiny_clip_run(tmp_path, steps=2)
    run = tm.load_run(tmp_path)
    with pytest.raises(ValueError, match="no caption decoder.*--stages caption"):
        run.caption(run.gallery.images[:1])
    with pytest.raises(ValueError, match="no image decoder.*--stages image"):
        run.generate(["a small red circle"])
