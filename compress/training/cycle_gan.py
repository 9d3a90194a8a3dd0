"""CycleGAN: two generators (A->B, B->A) and two unconditional PatchGANs on unpaired data.

Per step (upstream order): G_A(A), G_B(G_A(A)), G_B(B), G_A(G_B(B)); the generators minimise
GAN(D_A(G_A(A))) + GAN(D_B(G_B(B))) + λ_cycle·(|G_B(G_A(A)) - A| + |G_A(G_B(B)) - B|) +
λ_cycle·λ_identity·(|G_A(B) - B| + |G_B(A) - A|); then each discriminator learns real vs
fake with loss ½(real + fake), the fakes drawn through a 50-image history pool. The A->B
generator ``G`` is the one that is exported and compressed; ``G_B`` is exported beside it.

Networks are called through two composite modules (`CycleGenerators`, `CycleDiscriminators`)
so that under DistributedDataParallel each wrapper runs one forward per backward.
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compress.training.losses import GANLoss, ImagePool
from compress.training.distributed import DistContext, wrap
from compress.training.recipe import Recipe, adam, set_requires_grad


class CycleGenerators(nn.Module):
    def __init__(self, g_a: nn.Module, g_b: nn.Module, identity: bool):
        super().__init__()
        self.g_a, self.g_b, self.identity = g_a, g_b, identity

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor) -> Dict[str, torch.Tensor]:
        fake_b = self.g_a(real_a)
        fake_a = self.g_b(real_b)
        out = {"fake_B": fake_b, "rec_A": self.g_b(fake_b), "fake_A": fake_a, "rec_B": self.g_a(fake_a)}
        if self.identity:
            out["idt_A"] = self.g_a(real_b)  # G_A should leave B images alone
            out["idt_B"] = self.g_b(real_a)
        return out


class CycleDiscriminators(nn.Module):
    def __init__(self, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.d_a, self.d_b = d_a, d_b

    def forward(self, real_b, fake_b, real_a, fake_a):
        return self.d_a(real_b), self.d_a(fake_b), self.d_b(real_a), self.d_b(fake_a)


class CycleGANRecipe(Recipe):
    def __init__(self, g_a: nn.Module, g_b: nn.Module, d_a: nn.Module, d_b: nn.Module, ctx: DistContext, *,
                 gan_mode: str = "lsgan", lambda_cycle: float = 10.0, lambda_identity: float = 0.5,
                 pool_size: int = 50, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas: Sequence[float] = (0.5, 0.999)):
        device = ctx.device
        self.device = device
        self.modules = {"G": g_a.to(device), "G_B": g_b.to(device),
                        "D_A": d_a.to(device), "D_B": d_b.to(device)}
        self.gan_loss = GANLoss(gan_mode)
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.g_step = wrap(CycleGenerators(self.modules["G"], self.modules["G_B"], lambda_identity > 0), ctx)
        self.d_step = wrap(CycleDiscriminators(self.modules["D_A"], self.modules["D_B"]), ctx)
        self.optimizers = {
            "G": adam(list(g_a.parameters()) + list(g_b.parameters()), lr_g, betas),
            "D": adam(list(d_a.parameters()) + list(d_b.parameters()), lr_d, betas)}
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self._visuals: Dict[str, torch.Tensor] = {}

    @property
    def generators(self) -> Dict[str, nn.Module]:
        return {"G": self.modules["G"], "G_B": self.modules["G_B"]}

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        real_a = batch["A"].to(self.device, non_blocking=True)
        real_b = batch["B"].to(self.device, non_blocking=True)
        d_a, d_b = self.modules["D_A"], self.modules["D_B"]
        out = self.g_step(real_a, real_b)

        # generators, discriminators frozen and called unwrapped
        set_requires_grad([d_a, d_b], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        losses = {"G_A": self.gan_loss(d_a(out["fake_B"]), True, for_discriminator=False),
                  "G_B": self.gan_loss(d_b(out["fake_A"]), True, for_discriminator=False),
                  "cycle_A": F.l1_loss(out["rec_A"], real_a) * self.lambda_cycle,
                  "cycle_B": F.l1_loss(out["rec_B"], real_b) * self.lambda_cycle}
        if self.lambda_identity > 0:
            weight = self.lambda_cycle * self.lambda_identity
            losses["idt_A"] = F.l1_loss(out["idt_A"], real_b) * weight
            losses["idt_B"] = F.l1_loss(out["idt_B"], real_a) * weight
        sum(losses.values()).backward()
        self.optimizers["G"].step()

        # discriminators on pooled fakes
        set_requires_grad([d_a, d_b], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        fake_b = self.pool_b.query(out["fake_B"])
        fake_a = self.pool_a.query(out["fake_A"])
        pred_real_b, pred_fake_b, pred_real_a, pred_fake_a = self.d_step(real_b, fake_b, real_a, fake_a)
        losses["D_A"] = 0.5 * (self.gan_loss(pred_real_b, True) + self.gan_loss(pred_fake_b, False))
        losses["D_B"] = 0.5 * (self.gan_loss(pred_real_a, True) + self.gan_loss(pred_fake_a, False))
        (losses["D_A"] + losses["D_B"]).backward()
        self.optimizers["D"].step()

        self._visuals = {"real_A": real_a, "fake_B": out["fake_B"].detach(), "rec_A": out["rec_A"].detach(),
                         "real_B": real_b, "fake_A": out["fake_A"].detach(), "rec_B": out["rec_B"].detach()}
        return {k: v.item() for k, v in losses.items()}

    @property
    def visuals(self) -> Dict[str, torch.Tensor]:
        return self._visuals

    def rank_state(self) -> Dict[str, torch.Tensor]:
        return {"pool_A": self.pool_a.state_dict()["images"], "pool_B": self.pool_b.state_dict()["images"]}

    def load_rank_state(self, state: Dict[str, torch.Tensor]) -> None:
        self.pool_a.load_state_dict({"images": state["pool_A"]}, self.device)
        self.pool_b.load_state_dict({"images": state["pool_B"]}, self.device)
