"""pix2pix: a paired image-to-image generator trained against a conditional PatchGAN.

Per step (upstream order): the generator translates A; the discriminator learns to tell
(A, B) from (A, G(A)) with loss ½(fake + real); then the generator minimises the GAN loss of
D(A, G(A)) plus ``lambda_l1`` * L1(G(A), B). GAN Compression trains its pix2pix teachers this
way with the hinge loss and λ_L1 = 100.
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compress.training.losses import GANLoss
from compress.training.distributed import DistContext, MultiCall, wrap
from compress.training.recipe import Recipe, adam, set_requires_grad


class Pix2PixRecipe(Recipe):
    def __init__(self, generator: nn.Module, discriminator: nn.Module, ctx: DistContext, *,
                 gan_mode: str = "hinge", lambda_l1: float = 100.0, lr_g: float = 2e-4,
                 lr_d: float = 2e-4, betas: Sequence[float] = (0.5, 0.999)):
        device = ctx.device
        self.modules = {"G": generator.to(device), "D": discriminator.to(device)}
        self.device = device
        self.gan_loss = GANLoss(gan_mode)
        self.lambda_l1 = lambda_l1
        # DDP wrappers: one forward per backward each (the D step judges fake and real in one call)
        self.g_step = wrap(self.modules["G"], ctx)
        self.d_step = wrap(MultiCall(self.modules["D"]), ctx)
        self.optimizers = {"G": adam(generator.parameters(), lr_g, betas),
                           "D": adam(discriminator.parameters(), lr_d, betas)}
        self._visuals: Dict[str, torch.Tensor] = {}

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        real_a = batch["A"].to(self.device, non_blocking=True)
        real_b = batch["B"].to(self.device, non_blocking=True)
        D = self.modules["D"]
        fake_b = self.g_step(real_a)

        # discriminator: conditional on the input, fakes detached
        set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        pred_fake, pred_real = self.d_step(torch.cat([real_a, fake_b.detach()], 1),
                                           torch.cat([real_a, real_b], 1))
        loss_d_fake = self.gan_loss(pred_fake, False)
        loss_d_real = self.gan_loss(pred_real, True)
        loss_d = 0.5 * (loss_d_fake + loss_d_real)
        loss_d.backward()
        self.optimizers["D"].step()

        # generator: D frozen and called unwrapped (its weights need no gradient)
        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g_gan = self.gan_loss(D(torch.cat([real_a, fake_b], 1)), True, for_discriminator=False)
        loss_g_l1 = F.l1_loss(fake_b, real_b) * self.lambda_l1
        (loss_g_gan + loss_g_l1).backward()
        self.optimizers["G"].step()
        set_requires_grad([D], True)

        self._visuals = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        return {"G_gan": loss_g_gan.item(), "G_L1": loss_g_l1.item(),
                "D_real": loss_d_real.item(), "D_fake": loss_d_fake.item()}

    @property
    def visuals(self) -> Dict[str, torch.Tensor]:
        return self._visuals
