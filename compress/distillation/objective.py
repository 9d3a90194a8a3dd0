"""The GAN Compression student objective: distillation, once-for-all (supernet) training and
fine-tuning all run this recipe; they differ only in the student and in which sub-network
configs each step trains (`fixed_sampler`, `uniform_sampler`, `sandwich_sampler`).

Student loss (upstream ``distillers/*`` and ``supernets/*``):
  L_G = lambda_gan * GAN(D) + lambda_recon * L1(S(x), target)
        + lambda_distill * sum_l MSE(adaptor_l(S_l(x)), T_l(x))
        [SPADE: + lambda_feat * feature matching + lambda_vgg * VGG]
        [options beyond the paper, 0 by default (OMGD-style output distillation):
         + lambda_teacher_l1 * L1(S(x), T(x)) + lambda_ssim * (1 - SSIM(S(x), T(x)))
         + lambda_disc_feat * sum_l L1(D_l(x, S(x)), D_l(x, T(x)))  (discriminator-feature
           distillation: the student matches the teacher's output in the current D's hidden
           features, a learned perceptual space built from no outside weights)
         + lambda_perceptual * sum_l L1(F_l(S(x)), F_l(T(x)))
         + lambda_style * sum_l L1(Gram(F_l(S(x))), Gram(F_l(T(x))))  (F = a frozen segmenter's
           encoder, ``compress.distillation.style``)
         + lambda_band * L1(DoG(S(x)), DoG(T(x)))  (DoG = difference of Gaussians between
           band_sigmas: the mid-scale detail where the facades student's KID gap lives)]
  [cutmix_prob > 0 (not in the paper): on that share of the steps the batch is CutMixed first
   (``compress.data.mixing``), so the teacher is asked about label maps no dataset holds]
  L_D = 1/2 (fake + real)   (SPADE: fake + real, as GauGAN)
Paired and unpaired data are unified as upstream does: with paired data (aligned / label-map
datasets) the reconstruction target is the ground truth B and the discriminator is conditional
on concat(A, image); with unpaired data (CycleGAN) the target is the frozen teacher's output
T(x) and the discriminator is unconditional, judging real domain-B images against S(x).

The teacher is frozen (eval mode, no gradients) and runs once per step; its mapped-layer
activations come from forward hooks. The adaptors train with the generator's optimiser.

Step order. ResNet family (upstream ``optimize_parameters``): per config, the student translates
x; D's loss on the detached fake backpropagates, then (D frozen) the student's loss; after all
configs D and G step once (gradients accumulated: the sandwich rule). SPADE (as GauGAN): the
generator step for every config first, then a discriminator step on fresh fakes per config.

The per-step configs come from the recipe's own ``random.Random(seed)``: identical on every
rank under torchrun, and saved/restored with the checkpoint (``rank_state``).
"""
import random
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compress.data.mixing import cutmix_pairs
from compress.distillation.features import Adaptors, FeatureHooks, distill_loss, run_generator
from compress.training.losses import GANLoss, band_pass, feature_matching_loss, ssim
from compress.training.distributed import DistContext, MultiCall, wrap
from compress.training.gaugan import split_batch
from compress.training.recipe import Recipe, adam, set_requires_grad

# sampler(rng) -> the configs to train this step (None = the student's own/active config)
Sampler = Callable[[random.Random], List[Optional[tuple]]]


def fixed_sampler(config=None) -> Sampler:
    return lambda rng: [config]


def uniform_sampler(space) -> Sampler:
    """One config per step, each position drawn uniformly (upstream's supernet sampler)."""
    return lambda rng: [space.sample(rng)]


def sandwich_sampler(space) -> Sampler:
    """The sandwich rule: largest, smallest and one random config every step."""
    return lambda rng: [space.largest(), space.smallest(), space.sample(rng)]


class StudentStep(nn.Module):
    """Student + adaptors as one module (one DDP wrapper, one forward per backward):
    ``forward(x, config)`` -> (image, adapted mapped-layer features)."""

    def __init__(self, student: nn.Module, adaptors: Optional[Adaptors], layers: Sequence[str]):
        super().__init__()
        self.student, self.adaptors = student, adaptors
        self.hooks = FeatureHooks(student, layers) if adaptors is not None else None

    def forward(self, x: torch.Tensor, config=None):
        if self.hooks is None:
            return run_generator(self.student, x, config), []
        image, features = self.hooks.run(run_generator, self.student, x, config)
        return image, self.adaptors(features)


class DistillRecipe(Recipe):
    def __init__(self, student: nn.Module, teacher: nn.Module, discriminator: nn.Module,
                 adaptors: Optional[Adaptors], ctx: DistContext, *, layers: Sequence[str], paired: bool,
                 sampler: Sampler, seed: int, gan_mode: str = "hinge", lambda_gan: float = 1.0,
                 lambda_recon: float = 100.0, lambda_distill: float = 1.0, lambda_feat: float = 10.0,
                 lambda_vgg: float = 10.0, vgg: Optional[nn.Module] = None,
                 lambda_teacher_l1: float = 0.0, lambda_ssim: float = 0.0, lambda_disc_feat: float = 0.0,
                 feature_terms: Optional[nn.Module] = None, lambda_perceptual: float = 0.0,
                 lambda_style: float = 0.0, lambda_band: float = 0.0,
                 band_sigmas: Sequence[float] = (1.0, 4.0), cutmix_prob: float = 0.0,
                 lr_g: float = 2e-4, lr_d: float = 2e-4, betas: Sequence[float] = (0.5, 0.999),
                 export_name: str = "G"):
        if student.family != teacher.family:
            raise ValueError(f"a {student.family} student cannot distill from a {teacher.family} teacher")
        device = self.device = ctx.device
        self.family, self.paired = student.family, paired
        if self.family == "spade" and not paired:
            raise ValueError("SPADE students train on paired label maps")
        self.modules = {"G": student.to(device), "D": discriminator.to(device)}
        if adaptors is not None:
            self.modules["A"] = adaptors.to(device)
        self.teacher = teacher.to(device).eval()
        set_requires_grad([self.teacher], False)
        self.teacher_hooks = FeatureHooks(self.teacher, layers) if adaptors is not None else None
        self.gan_loss = GANLoss(gan_mode)
        self.lambda_gan, self.lambda_recon, self.lambda_distill = lambda_gan, lambda_recon, lambda_distill
        self.lambda_feat = lambda_feat
        # output distillation: the student copies the teacher's translation (both are 0 upstream)
        self.lambda_teacher_l1, self.lambda_ssim = lambda_teacher_l1, lambda_ssim
        self.lambda_disc_feat = lambda_disc_feat
        self.lambda_band, self.band_sigmas = lambda_band, tuple(band_sigmas)
        if (lambda_perceptual > 0 or lambda_style > 0) and feature_terms is None:
            raise ValueError("lambda_perceptual / lambda_style need feature_terms (a frozen segmenter)")
        self.feature_terms = feature_terms.to(device) if feature_terms is not None else None
        self.lambda_perceptual, self.lambda_style = lambda_perceptual, lambda_style
        self.vgg = vgg.to(device) if vgg is not None and lambda_vgg > 0 else None
        self.lambda_vgg = lambda_vgg if self.vgg is not None else 0.0
        self.sampler, self.rng = sampler, random.Random(seed)
        # its own stream, so that switching CutMix on leaves the per-step configs unchanged
        self.cutmix_prob, self.mix_rng = cutmix_prob, random.Random(seed + 1)
        self.g_step = wrap(StudentStep(self.modules["G"], adaptors, layers), ctx)
        judge = MultiCall(self.modules["D"]) if self.family == "resnet" else self.modules["D"]
        self.d_step = wrap(judge, ctx)
        g_params = list(student.parameters()) + (list(adaptors.parameters()) if adaptors is not None else [])
        self.optimizers = {"G": adam(g_params, lr_g, betas),
                           "D": adam(discriminator.parameters(), lr_d, betas)}
        self.export_name = export_name  # the student is exported as <export_name>.safetensors
        self.last_configs: List[Optional[tuple]] = []
        self._visuals: Dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------------- pieces

    @property
    def generators(self) -> Dict[str, nn.Module]:
        return {self.export_name: self.modules["G"]}

    def translate(self, inputs: torch.Tensor, config=None) -> torch.Tensor:
        return run_generator(self.modules["G"], inputs, config)

    def run_teacher(self, x: torch.Tensor):
        """(teacher output, teacher mapped-layer features), without gradients."""
        with torch.no_grad():
            if self.teacher_hooks is None:
                return self.teacher(x), []
            return self.teacher_hooks.run(self.teacher, x)

    def _student_losses(self, fake, adapted, teacher, target) -> Dict[str, torch.Tensor]:
        """The non-adversarial terms; ``teacher`` = (teacher output, teacher mapped features)."""
        teacher_out, teacher_features = teacher
        losses: Dict[str, torch.Tensor] = {}
        if self.lambda_recon > 0:
            losses["G_recon"] = F.l1_loss(fake, target) * self.lambda_recon
        if self.lambda_teacher_l1 > 0:
            losses["G_teacher_l1"] = F.l1_loss(fake, teacher_out) * self.lambda_teacher_l1
        if self.lambda_ssim > 0:
            losses["G_ssim"] = (1.0 - ssim(fake, teacher_out)) * self.lambda_ssim
        if self.lambda_band > 0:
            fine, coarse = self.band_sigmas
            losses["G_band"] = F.l1_loss(band_pass(fake, fine, coarse),
                                         band_pass(teacher_out, fine, coarse)) * self.lambda_band
        if self.feature_terms is not None and (self.lambda_perceptual > 0 or self.lambda_style > 0):
            perceptual, style = self.feature_terms(fake, teacher_out)
            if self.lambda_perceptual > 0:
                losses["G_perceptual"] = perceptual * self.lambda_perceptual
            if self.lambda_style > 0:
                losses["G_style"] = style * self.lambda_style
        if adapted:
            losses["G_distill"] = distill_loss(adapted, teacher_features) * self.lambda_distill
        return losses

    def _d_input(self, real_a: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([real_a, image], 1) if self.paired else image

    # ------------------------------------------------------------------------- steps

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        real_a = batch["A"].to(self.device, non_blocking=True)
        real_b = batch["B"].to(self.device, non_blocking=True)
        if self.cutmix_prob > 0 and self.mix_rng.random() < self.cutmix_prob:
            real_a, real_b = cutmix_pairs(real_a, real_b, self.mix_rng)
        configs = self.sampler(self.rng)
        self.last_configs = list(configs)
        teacher = self.run_teacher(real_a)  # (output, mapped-layer features)
        teacher_out = teacher[0]
        # unpaired: the teacher's translation is the reconstruction target; paired: the ground truth
        target = real_b if self.paired else teacher_out
        step = self._resnet_step if self.family == "resnet" else self._spade_step
        totals, fake = step(real_a, real_b, target, teacher, configs)
        self._visuals = {"real_A": real_a, "fake_B": fake.detach(), "teacher_B": teacher_out,
                         "real_B": real_b}
        return {k: v / len(configs) for k, v in totals.items()}

    def _resnet_step(self, real_a, real_b, target, teacher, configs):
        D = self.modules["D"]
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        totals: Dict[str, float] = {}
        fake = real_b
        teacher_d = None  # D steps after every config: its features of (x, T(x)) are computed once
        if self.lambda_disc_feat > 0:
            with torch.no_grad():
                teacher_d = D.features(self._d_input(real_a, teacher[0]))
        for config in configs:
            fake, adapted = self.g_step(real_a, config)
            set_requires_grad([D], True)
            pred_fake, pred_real = self.d_step(self._d_input(real_a, fake.detach()),
                                               self._d_input(real_a, real_b))
            losses = {"D_fake": self.gan_loss(pred_fake, False), "D_real": self.gan_loss(pred_real, True)}
            (0.5 * (losses["D_fake"] + losses["D_real"])).backward()
            set_requires_grad([D], False)
            g_losses = self._resnet_adversarial(D, real_a, fake, teacher_d)
            g_losses.update(self._student_losses(fake, adapted, teacher, target))
            sum(g_losses.values()).backward()
            set_requires_grad([D], True)
            for key, value in dict(losses, **g_losses).items():
                totals[key] = totals.get(key, 0.0) + value.item()
        self.optimizers["D"].step()
        self.optimizers["G"].step()
        return totals, fake

    def _resnet_adversarial(self, D: nn.Module, real_a, fake,
                            teacher_features: Optional[List[torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """The student's GAN term and, with ``teacher_features`` (D's features of (x, T(x)),
        constants), its discriminator-feature term: one D pass over the student's output serves
        both."""
        if teacher_features is None:
            return {"G_gan": self.gan_loss(D(self._d_input(real_a, fake)), True, for_discriminator=False)
                    * self.lambda_gan}
        fake_features = D.features(self._d_input(real_a, fake))
        return {"G_gan": self.gan_loss(fake_features[-1], True, for_discriminator=False) * self.lambda_gan,
                "G_disc_feat": feature_matching_loss([fake_features], [teacher_features])
                * self.lambda_disc_feat}

    def _discriminate(self, D: nn.Module, seg, fake, real):
        pairs = torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)], 0)
        return split_batch(D(pairs), fake.size(0))

    def _spade_step(self, seg, real, target, teacher, configs):
        D = self.modules["D"]
        totals: Dict[str, float] = {}
        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        fake = real
        pred_teacher = None
        if self.lambda_disc_feat > 0:  # D is frozen for the whole generator phase: judge T(x) once
            with torch.no_grad():
                pred_teacher, _ = self._discriminate(D, seg, teacher[0], real)
        for config in configs:
            fake, adapted = self.g_step(seg, config)
            pred_fake, pred_real = self._discriminate(D, seg, fake, real)
            losses = {"G_gan": self.gan_loss(pred_fake, True, for_discriminator=False) * self.lambda_gan}
            if self.lambda_feat > 0:
                losses["G_feat"] = feature_matching_loss(pred_fake, pred_real) * self.lambda_feat
            if pred_teacher is not None:
                losses["G_disc_feat"] = feature_matching_loss(pred_fake, pred_teacher) * self.lambda_disc_feat
            if self.vgg is not None:
                losses["G_vgg"] = self.vgg(fake, real) * self.lambda_vgg
            losses.update(self._student_losses(fake, adapted, teacher, target))
            sum(losses.values()).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.item()
        self.optimizers["G"].step()

        set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        for config in configs:  # fresh fakes from the updated student, as GauGAN does
            with torch.no_grad():
                fresh = run_generator(self.modules["G"], seg, config)
            pred_fake, pred_real = self._discriminate(self.d_step, seg, fresh, real)
            losses = {"D_fake": self.gan_loss(pred_fake, False), "D_real": self.gan_loss(pred_real, True)}
            (losses["D_fake"] + losses["D_real"]).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.item()
        self.optimizers["D"].step()
        return totals, fake

    # ------------------------------------------------------------------------- engine hooks

    @property
    def visuals(self) -> Dict[str, torch.Tensor]:
        return self._visuals

    def rank_state(self) -> Dict[str, object]:
        return {"config_rng": _rng_state(self.rng), "mix_rng": _rng_state(self.mix_rng)}

    def load_rank_state(self, state: Dict[str, object]) -> None:
        _set_rng_state(self.rng, state["config_rng"])
        if "mix_rng" in state:  # absent in checkpoints from before CutMix existed
            _set_rng_state(self.mix_rng, state["mix_rng"])

    def train(self, mode: bool = True) -> None:
        super().train(mode)
        self.teacher.eval()  # always frozen
        if self.feature_terms is not None:
            self.feature_terms.eval()


def _rng_state(rng: random.Random) -> tuple:
    version, internal, gauss = rng.getstate()
    return version, tuple(internal), gauss


def _set_rng_state(rng: random.Random, state) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))
