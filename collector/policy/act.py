"""A compact ACT (Action Chunking with Transformers, Zhao et al. 2023) for CPU training.

The paper's design, kept: a conditional VAE whose encoder reads the demonstrated action chunk (and
the joint state) into a latent style variable z during training; a transformer encoder over the
image feature tokens of every camera, the joint state, the conditioning token and z; a transformer
decoder whose `chunk` learned queries cross-attend to it and each emit one action; L1 reconstruction
plus a KL term (weight 10 in the paper). At inference z is the prior mean (zero).

What is smaller than the paper, and why: a from-scratch 4-stage CNN on 80x60 frames instead of a
pretrained ResNet-18 (no download; ~5 M multiply-adds per frame against ~175 M for ResNet-18 at that
size; collector.policy.image_encoder), d_model 128 instead of 512, feed-forward 512 instead of 3200,
3 encoder layers instead of 4, one decoder layer (the original code builds 7 but, through a known
quirk, uses only the first; LeRobot keeps 1), chunk 30 at 30 Hz instead of 100 at 50 Hz (one second
either way). About 1.4 M parameters with the defaults.
The task/object conditioning token is our addition (issue 15: pick-and-place names the object).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from collector.policy.base import Policy, PolicyBatch, PolicySpec, masked_l1
from collector.policy.image_encoder import ConvEncoder, encode_cameras

DEFAULTS = {
    "d_model": 128, "heads": 4, "encoder_layers": 3, "decoder_layers": 1, "vae_encoder_layers": 2,
    "feedforward": 512, "latent_dim": 32, "kl_weight": 10.0, "dropout": 0.1,
    "cnn_channels": [16, 32, 64, 128],
}


def _encoder(d: int, heads: int, feedforward: int, dropout: float, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, feedforward, dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _position(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class ACTPolicy(Policy):
    name = "act"

    def __init__(self, spec: PolicySpec, **hyperparameters):
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown ACT hyperparameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        hp = {**DEFAULTS, **hyperparameters}
        super().__init__(spec, **hp)
        d, heads, ff, dropout = hp["d_model"], hp["heads"], hp["feedforward"], hp["dropout"]
        self.latent_dim, self.kl_weight = hp["latent_dim"], float(hp["kl_weight"])

        # observation encoder: [z, state, conditioning] + image tokens of every camera
        if spec.cameras:
            self.backbone = ConvEncoder(hp["cnn_channels"], d)
            fh, fw = self.backbone.output_size(spec.image_size)
            self.image_position = _position(1, len(spec.cameras) * fh * fw, d)
        self.latent_in = nn.Linear(self.latent_dim, d)
        self.state_in = nn.Linear(spec.state_dim, d)
        self.conditioning = nn.Embedding(spec.vocabulary_size, d)
        self.token_position = _position(1, 3, d)
        self.encoder = _encoder(d, heads, ff, dropout, hp["encoder_layers"])

        # action decoder: one learned query per step of the chunk
        self.queries = _position(1, spec.chunk, d)
        layer = nn.TransformerDecoderLayer(d, heads, ff, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, hp["decoder_layers"], norm=nn.LayerNorm(d))
        self.action_out = nn.Linear(d, spec.action_dim)

        # CVAE posterior q(z | state, action chunk): only used in training
        self.vae_cls = _position(1, 1, d)
        self.vae_state = nn.Linear(spec.state_dim, d)
        self.vae_action = nn.Linear(spec.action_dim, d)
        self.vae_position = _position(1, 2 + spec.chunk, d)
        self.vae_encoder = _encoder(d, heads, ff, dropout, hp["vae_encoder_layers"])
        self.vae_out = nn.Linear(d, 2 * self.latent_dim)

    def _memory(self, batch: PolicyBatch, z: torch.Tensor) -> torch.Tensor:
        state = batch["state"]
        tokens = torch.stack([self.latent_in(z), self.state_in(state),
                              self.conditioning(batch["conditioning"]).sum(dim=1)], dim=1) + self.token_position
        if self.spec.cameras:
            features = encode_cameras(self.backbone, batch["images"])  # (B, cams, d, h, w)
            image_tokens = features.permute(0, 1, 3, 4, 2).flatten(1, 3) + self.image_position
            tokens = torch.cat([tokens, image_tokens], dim=1)
        return self.encoder(tokens)

    def _decode(self, memory: torch.Tensor) -> torch.Tensor:
        queries = self.queries.expand(memory.shape[0], -1, -1)
        return self.action_out(self.decoder(queries, memory))

    def _posterior(self, batch: PolicyBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        b = batch["state"].shape[0]
        tokens = torch.cat([self.vae_cls.expand(b, -1, -1), self.vae_state(batch["state"]).unsqueeze(1),
                            self.vae_action(batch["action"])], dim=1) + self.vae_position
        # padded steps past the episode end are not evidence of the operator's style
        pad = torch.cat([torch.zeros(b, 2, dtype=torch.bool, device=tokens.device), batch["action_is_pad"]], dim=1)
        summary = self.vae_encoder(tokens, src_key_padding_mask=pad)[:, 0]
        mu, log_var = self.vae_out(summary).chunk(2, dim=-1)
        return mu, log_var

    def predict_chunk(self, batch: PolicyBatch) -> torch.Tensor:
        z = batch["state"].new_zeros(batch["state"].shape[0], self.latent_dim)  # the prior's mean
        return self._decode(self._memory(batch, z))

    def loss(self, batch: PolicyBatch) -> Tuple[torch.Tensor, Dict[str, float]]:
        mu, log_var = self._posterior(batch)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        predicted = self._decode(self._memory(batch, z))
        l1 = masked_l1(predicted, batch["action"], batch["action_is_pad"])
        kl = (-0.5 * (1 + log_var - mu.pow(2) - log_var.exp())).sum(dim=-1).mean()
        total = l1 + self.kl_weight * kl
        return total, {"l1": float(l1.detach()), "kl": float(kl.detach())}
