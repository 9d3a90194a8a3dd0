"""GauGAN (SPADE): a label-map-to-image generator against a multi-scale PatchGAN.

Per step (upstream SPADE order): the generator step first: fake = G(seg); the discriminator
judges (seg, fake) and (seg, real) in one batch (upstream concatenates them so that norms see
both); G minimises hinge GAN + λ_feat·feature matching + λ_vgg·VGG19 perceptual loss. Then the
discriminator step regenerates the fake without gradients and minimises hinge(real) +
hinge(fake). Optimisers: TTUR (upstream: lr_G 1e-4, lr_D 4e-4, betas (0, 0.9)).

The VGG loss needs a local VGG19 weights file (`compress.training.losses.VGGPerceptualLoss`); without
one the recipe trains without it (the caller logs a note).
"""
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from compress.training.losses import GANLoss, VGGPerceptualLoss, feature_matching_loss
from compress.training.distributed import DistContext, wrap
from compress.training.recipe import Recipe, adam, set_requires_grad


def split_batch(features, n: int):
    """Split the multi-scale outputs of D on a [fake; real] batch into (fake, real) lists."""
    fake = [[f[:n] for f in scale] for scale in features]
    real = [[f[n:] for f in scale] for scale in features]
    return fake, real


class GauGANRecipe(Recipe):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, ctx: DistContext, *,
                 lambda_feat: float = 10.0, lambda_vgg: float = 10.0, vgg: Optional[VGGPerceptualLoss] = None,
                 lr_g: float = 1e-4, lr_d: float = 4e-4, betas: Sequence[float] = (0.0, 0.9)):
        device = ctx.device
        self.device = device
        if ctx.distributed and device.type == "cuda":  # upstream trains with synchronised BN
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.modules = {"G": generator.to(device), "D": discriminator.to(device)}
        self.gan_loss = GANLoss("hinge")
        self.lambda_feat = lambda_feat
        self.vgg = vgg.to(device) if vgg is not None and lambda_vgg > 0 else None
        self.lambda_vgg = lambda_vgg if self.vgg is not None else 0.0
        self.g_step = wrap(self.modules["G"], ctx)
        self.d_step = wrap(self.modules["D"], ctx)
        self.optimizers = {"G": adam(generator.parameters(), lr_g, betas),
                           "D": adam(discriminator.parameters(), lr_d, betas)}
        self._visuals: Dict[str, torch.Tensor] = {}

    def _discriminate(self, D: nn.Module, seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor):
        pairs = torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)], 0)
        return split_batch(D(pairs), fake.size(0))

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        seg = batch["A"].to(self.device, non_blocking=True)
        real = batch["B"].to(self.device, non_blocking=True)
        D = self.modules["D"]

        # generator step, D frozen and unwrapped
        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        fake = self.g_step(seg)
        pred_fake, pred_real = self._discriminate(D, seg, fake, real)
        losses = {"G_gan": self.gan_loss(pred_fake, True, for_discriminator=False)}
        if self.lambda_feat > 0:
            losses["G_feat"] = feature_matching_loss(pred_fake, pred_real) * self.lambda_feat
        if self.vgg is not None:
            losses["G_vgg"] = self.vgg(fake, real) * self.lambda_vgg
        sum(losses.values()).backward()
        self.optimizers["G"].step()

        # discriminator step on a fresh fake from the updated generator (upstream regenerates)
        set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = self.modules["G"](seg)
        pred_fake, pred_real = self._discriminate(self.d_step, seg, fake, real)
        losses["D_fake"] = self.gan_loss(pred_fake, False)
        losses["D_real"] = self.gan_loss(pred_real, True)
        (losses["D_fake"] + losses["D_real"]).backward()
        self.optimizers["D"].step()

        self._visuals = {"fake_B": fake, "real_B": real}
        return {k: v.item() for k, v in losses.items()}

    @property
    def visuals(self) -> Dict[str, torch.Tensor]:
        return self._visuals
