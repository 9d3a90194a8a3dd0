"""compress.distillation.objective: config sampling (uniform, sandwich), paired vs unpaired
targets, what trains and what stays frozen."""
import random

import torch
import torch.nn.functional as F

from compress.distillation.features import Adaptors, feature_widths, mapped_layers
from compress.models import build_generator
from compress.models.discriminators import NLayerDiscriminator
from compress.models.search_space import SearchSpace
from compress.distillation.objective import DistillRecipe, fixed_sampler, sandwich_sampler, uniform_sampler
from compress.training.distributed import setup

SPACE = SearchSpace("resnet", "custom", ((4, 2),) * 8)


def make_recipe(sampler, paired=True, adaptors=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    student = build_generator("super_mobile_resnet_9blocks", ngf=4)
    teacher = build_generator("resnet_9blocks", ngf=4)
    adaptor = Adaptors(feature_widths(student), feature_widths(teacher)) if adaptors else None
    D = NLayerDiscriminator(6 if paired else 3, 8, 2)
    return DistillRecipe(student, teacher, D, adaptor, setup("cpu"), layers=mapped_layers(student),
                         paired=paired, sampler=sampler, seed=seed, **kwargs)


def batch(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for key in ("A", "B")}


def test_sandwich_trains_largest_smallest_and_random_in_one_step():
    recipe = make_recipe(sandwich_sampler(SPACE))
    trunks = []
    recipe.modules["G"].model[7].register_forward_hook(lambda m, i, o: trunks.append(o.shape[1]))
    before = {k: v.clone() for k, v in recipe.modules["G"].state_dict().items()}
    losses = recipe.train_step(batch())
    largest, smallest, drawn = recipe.last_configs
    assert (largest, smallest) == (SPACE.largest(), SPACE.smallest()) and drawn in SPACE
    assert trunks == [16, 8, 4 * drawn[2]]  # one student forward per config, gradients accumulated
    assert set(losses) == {"D_fake", "D_real", "G_gan", "G_recon", "G_distill"}
    after = recipe.modules["G"].state_dict()
    assert not torch.equal(before["model.1.weight"], after["model.1.weight"])


def test_uniform_sampling_is_seeded_identical_per_rank_and_resumable():
    draws = [uniform_sampler(SPACE)(random.Random(5))[0] for _ in range(2)]
    assert draws[0] == draws[1]
    recipe = make_recipe(uniform_sampler(SPACE), seed=5)
    state = recipe.rank_state()
    first = [recipe.sampler(recipe.rng)[0] for _ in range(6)]
    assert len(set(first)) > 1 and all(c in SPACE for c in first)
    recipe.load_rank_state(state)
    assert [recipe.sampler(recipe.rng)[0] for _ in range(6)] == first
    assert fixed_sampler(None)(recipe.rng) == [None]


def reconstruction_target_loss(paired):
    recipe = make_recipe(fixed_sampler(SPACE.smallest()), paired=paired, adaptors=False, lambda_gan=0.0,
                         lambda_recon=10.0)
    data = batch()
    with torch.no_grad():
        fake = recipe.modules["G"](data["A"], config=SPACE.smallest())
        teacher_out = recipe.teacher(data["A"])
    target = data["B"] if paired else teacher_out
    return recipe, recipe.train_step(data), F.l1_loss(fake, target).item() * 10.0, teacher_out


def test_unpaired_reconstruction_target_is_the_teacher_output():
    recipe, losses, expected, teacher_out = reconstruction_target_loss(paired=False)
    assert abs(losses["G_recon"] - expected) < 1e-4 and "G_distill" not in losses
    assert recipe.modules["D"].model[0].in_channels == 3  # unconditional: judges B images alone
    torch.testing.assert_close(recipe.visuals["teacher_B"], teacher_out)


def test_paired_reconstruction_target_is_the_ground_truth():
    _, losses, expected, _ = reconstruction_target_loss(paired=True)
    assert abs(losses["G_recon"] - expected) < 1e-4


def test_teacher_stays_frozen_and_adaptors_train_with_the_generator():
    recipe = make_recipe(uniform_sampler(SPACE))
    teacher_before = {k: v.clone() for k, v in recipe.teacher.state_dict().items()}
    adaptor_before = recipe.modules["A"].convs[0].weight.clone()
    recipe.train(True)
    assert not recipe.teacher.training and all(not p.requires_grad for p in recipe.teacher.parameters())
    recipe.train_step(batch())
    assert all(torch.equal(v, recipe.teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert not torch.equal(adaptor_before, recipe.modules["A"].convs[0].weight)
    g_params = {id(p) for group in recipe.optimizers["G"].param_groups for p in group["params"]}
    assert all(id(p) in g_params for p in recipe.modules["A"].parameters())


def test_output_distillation_terms_compare_the_student_with_the_teacher():
    """lambda_teacher_l1 / lambda_ssim (off by default): L1 and 1 - SSIM against T(x), even with
    paired data, where G_recon keeps the ground truth as its target."""
    from compress.training.losses import ssim
    recipe = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False, lambda_gan=0.0, lambda_recon=10.0,
                         lambda_teacher_l1=3.0, lambda_ssim=2.0)
    data = batch()
    with torch.no_grad():
        fake = recipe.modules["G"](data["A"], config=SPACE.smallest())
        teacher_out = recipe.teacher(data["A"])
    losses = recipe.train_step(data)
    assert abs(losses["G_teacher_l1"] - 3.0 * F.l1_loss(fake, teacher_out).item()) < 1e-4
    assert abs(losses["G_ssim"] - 2.0 * (1.0 - ssim(fake, teacher_out).item())) < 1e-4
    assert abs(losses["G_recon"] - 10.0 * F.l1_loss(fake, data["B"]).item()) < 1e-4
    default = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False).train_step(batch())
    assert "G_teacher_l1" not in default and "G_ssim" not in default  # the paper's recipe


def test_band_term_compares_the_mid_scale_detail_of_student_and_teacher():
    """lambda_band (off by default): L1 between difference-of-Gaussians of S(x) and T(x)."""
    from compress.training.losses import band_pass
    recipe = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False, lambda_gan=0.0, lambda_recon=0.0,
                         lambda_band=5.0, band_sigmas=(0.5, 2.0))
    data = batch()
    with torch.no_grad():
        fake = recipe.modules["G"](data["A"], config=SPACE.smallest())
        teacher_out = recipe.teacher(data["A"])
    expected = 5.0 * F.l1_loss(band_pass(fake, 0.5, 2.0), band_pass(teacher_out, 0.5, 2.0)).item()
    losses = recipe.train_step(data)
    assert abs(losses["G_band"] - expected) < 1e-4 and expected > 0
    default = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False).train_step(batch())
    assert "G_band" not in default  # the paper's recipe


def test_discriminator_feature_term_matches_the_students_d_features_to_the_teachers():
    """lambda_disc_feat (off by default): L1 between D's hidden features of (x, S(x)) and
    (x, T(x)), summed over the LeakyReLU outputs; the logits are left to the GAN term."""
    recipe = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False, lambda_gan=1.0, lambda_recon=0.0,
                         lambda_disc_feat=2.0)
    data, D = batch(), recipe.modules["D"]
    with torch.no_grad():
        fake = recipe.modules["G"](data["A"], config=SPACE.smallest())
        teacher_out = recipe.teacher(data["A"])
        fake_features = D.features(torch.cat([data["A"], fake], 1))
        teacher_features = D.features(torch.cat([data["A"], teacher_out], 1))
        assert torch.equal(fake_features[-1], D(torch.cat([data["A"], fake], 1)))
    hidden = len(fake_features) - 1
    assert hidden == 3  # n_layers=2: the stem, one stride-2 and one stride-1 block
    expected = 2.0 * sum(F.l1_loss(f, t).item() for f, t in zip(fake_features[:hidden], teacher_features))
    gan = recipe.gan_loss(fake_features[-1], True, for_discriminator=False).item()
    losses = recipe.train_step(data)
    assert abs(losses["G_disc_feat"] - expected) < 1e-4 and expected > 0
    assert abs(losses["G_gan"] - gan) < 1e-4  # the shared D pass still gives the same GAN loss
    default = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False).train_step(batch())
    assert "G_disc_feat" not in default  # the paper's recipe


def test_cutmix_feeds_the_teacher_and_the_student_the_mixed_batch_and_resumes_its_stream():
    """cutmix_prob = 1: every step the teacher is asked about the mixed label maps (so its
    output, the distillation target, differs from its output on the clean batch); the mixing
    stream is saved with the rank state and does not disturb the per-step configs."""
    recipe = make_recipe(uniform_sampler(SPACE), adaptors=False, lambda_gan=0.0, lambda_recon=0.0,
                         lambda_teacher_l1=1.0, cutmix_prob=1.0)
    plain = make_recipe(uniform_sampler(SPACE), adaptors=False, lambda_gan=0.0, lambda_recon=0.0,
                        lambda_teacher_l1=1.0)
    data = batch()
    saved = recipe.rank_state()
    recipe.train_step(data)
    plain.train_step(data)
    assert recipe.last_configs == plain.last_configs  # its own random stream
    assert not torch.equal(recipe.visuals["real_A"], data["A"])
    with torch.no_grad():
        assert torch.allclose(recipe.visuals["teacher_B"], recipe.teacher(recipe.visuals["real_A"]))
    first = recipe.visuals["real_A"].clone()
    recipe.load_rank_state(saved)  # resuming replays the same boxes
    recipe.train_step(data)
    assert torch.equal(recipe.visuals["real_A"], first)
    recipe.load_rank_state({"config_rng": saved["config_rng"]})  # checkpoints from before CutMix
