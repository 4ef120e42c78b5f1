"""The simple baseline: CNN features of every camera, joint state and conditioning through an MLP that
outputs the whole action chunk at once. No latent variable, no attention: what ACT's extra machinery
must beat (a behaviour-cloning MLP with action chunking, as in ACT's own ablations)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from collector.policy.base import Policy, PolicyBatch, PolicySpec, masked_l1
from collector.policy.image_encoder import ConvEncoder, encode_cameras
from collector.policy.keypoints import KeypointEncoder, encode_keypoints

# image_features: "flatten" (the coarse feature map, flattened: where things are, by cell) or
# "keypoints" (a spatial softmax per feature: collector.policy.keypoints). Checkpoints written before
# the key existed were "flatten", so that stays the key's default.
# film: the instruction modulates every CNN stage (collector.policy.image_encoder), so the features can
# respond to the named object. object_loss: weight of an auxiliary loss that regresses the recorded
# object positions from the image features (collector.policy.object_targets; training only, 0 = off).
# objects_to_head: the object head's estimate (where the named target and every object are) is also an
# input of the action MLP, so the arm is steered by an explicit position rather than by whatever the
# flattened map encodes; it is computed from the cameras at run time, never read from the simulator.
# images_to_head: False leaves the image features out of the action MLP, so with objects_to_head it acts
# on the estimated positions, the joint state and the instruction alone (layouts it never saw are then
# only new positions, not new pictures). detach_objects: the action loss does not reach the object head
# through its estimate (the estimate keeps the meaning the object losses give it).
# ee_to_head: the end effectors' positions (forward kinematics of the joint state: collector.policy.
# end_effectors) are also inputs, and with an object head the vector from each to the target estimate, so
# the grasp is steered by where the hand is relative to the object rather than by seven angles.
# hand_loss: weight of a second action loss measured where the hands go: the L1 distance, in decimetres,
# between the end-effector positions the predicted chunk's joint targets and the recorded ones put each
# hand at (forward kinematics in torch: collector.policy.hand_chain; training only).
# steer_recorded: in training, the action MLP's object inputs (objects_to_head, ee_to_head) are the recorded
# positions of the frame, with Gaussian noise of steer_noise_m metres per coordinate, instead of the head's
# estimate; at run time they are the estimate, as always. Fitted on its own noisy estimate, the head learns
# to follow a position only part of the way (a regression on a noisy input is pulled towards the mean);
# fitted on the record, it follows it fully, and the estimate's error (about 7 mm) passes through unscaled.
# hand_offsets: weight of a second output of the action MLP and its loss: for every step of the chunk, where
# the recorded joint targets put each hand (forward kinematics, as hand_loss) relative to the frame's recorded
# target position, in decimetres. A hand's place relative to the target is nearly the same on every layout,
# so it need not be learned from 100 layouts the way absolute joint targets must; at run time the runner can
# send the hands to the target estimate plus these offsets through IK (collector.policy.hand_steering).
# Needs ee_to_head and an object head (training: the recorded target; run time: the estimate).
# Off (images_to_head on) by default: checkpoints written before they existed had none.
DEFAULTS = {"cnn_channels": [16, 32, 64, 128], "feature_channels": 16, "conditioning_dim": 32, "hidden": 512,
            "dropout": 0.0, "image_features": "flatten", "keypoint_channels": [32, 64, 64],
            "keypoint_strides": [2, 2, 1], "keypoints": 32, "film": False, "object_loss": 0.0,
            "objects_to_head": False, "images_to_head": True, "detach_objects": False, "ee_to_head": False,
            "hand_loss": 0.0, "steer_recorded": False, "steer_noise_m": 0.0, "hand_offsets": 0.0}
IMAGE_FEATURES = ("flatten", "keypoints")
OFFSET_SCALE_M = 0.1  # hand-to-target vectors are fed in decimetres: a grasp's last centimetres stay visible


class BaselinePolicy(Policy):
    name = "baseline"

    def __init__(self, spec: PolicySpec, **hyperparameters):
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown baseline hyperparameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        hp = {**DEFAULTS, **hyperparameters}
        if hp["image_features"] not in IMAGE_FEATURES:
            raise TypeError(f"image_features must be one of {', '.join(IMAGE_FEATURES)}, got {hp['image_features']!r}")
        super().__init__(spec, **hp)
        self.keypoint_features = hp["image_features"] == "keypoints"
        image_features = 0
        if spec.cameras and self.keypoint_features:
            self.backbone = KeypointEncoder(hp["keypoint_channels"], hp["keypoint_strides"], hp["keypoints"])
            image_features = len(spec.cameras) * self.backbone.output_dim
        elif spec.cameras:
            # a narrow 1x1 output keeps the flattened map (where things are) small enough for an MLP
            self.backbone = ConvEncoder(hp["cnn_channels"], hp["feature_channels"])
            fh, fw = self.backbone.output_size(spec.image_size)
            image_features = len(spec.cameras) * hp["feature_channels"] * fh * fw
        self.conditioning = nn.Embedding(spec.vocabulary_size, hp["conditioning_dim"])
        self.film = None
        if hp["film"]:
            if not spec.cameras or self.keypoint_features:
                raise TypeError("film needs cameras and image_features=flatten")
            widths = self.backbone.stage_widths
            self.film = nn.Linear(hp["conditioning_dim"], 2 * sum(widths))
            nn.init.zeros_(self.film.weight)  # starts as the unmodulated network
            nn.init.zeros_(self.film.bias)
            self._film_widths = [2 * w for w in widths]
        self.object_loss = float(hp["object_loss"])
        self.object_head = None
        if self.object_loss > 0:
            if not spec.object_targets or not image_features:
                raise TypeError("object_loss needs cameras and recorded object poses (spec.object_targets)")
            self.object_head = nn.Sequential(nn.Linear(image_features + hp["conditioning_dim"], 256),
                                             nn.ReLU(inplace=True), nn.Linear(256, spec.object_targets))
        self.objects_to_head = bool(hp["objects_to_head"])
        if self.objects_to_head and self.object_head is None:
            raise TypeError("objects_to_head needs object_loss > 0 (the object head it feeds from)")
        self.images_to_head = bool(hp["images_to_head"])
        self.detach_objects = bool(hp["detach_objects"])
        if not self.images_to_head and not self.objects_to_head:
            raise TypeError("images_to_head=false needs objects_to_head=true (the head must see the objects somehow)")
        width = (image_features if self.images_to_head else 0) + spec.state_dim + hp["conditioning_dim"]
        if self.objects_to_head:
            width += spec.object_targets
        self.ee_to_head = bool(hp["ee_to_head"])
        if self.ee_to_head:
            if not spec.end_effectors:
                raise TypeError("ee_to_head needs the end effectors' positions (spec.end_effectors: a robot "
                                "with end_effectors and its joint state)")
            width += spec.end_effectors * (2 if self.object_head is not None else 1)
            # set from the training frames before training (set_hand_statistics); saved with the weights
            self.register_buffer("ee_mean", torch.zeros(spec.end_effectors))
            self.register_buffer("ee_std", torch.ones(spec.end_effectors))
            self.register_buffer("target_mean", torch.zeros(3))
            self.register_buffer("target_std", torch.ones(3))
        self.steer_recorded = bool(hp["steer_recorded"])
        self.steer_noise_m = float(hp["steer_noise_m"])
        if self.steer_recorded:
            if not (self.objects_to_head or (self.ee_to_head and self.object_head is not None)):
                raise TypeError("steer_recorded needs an object input to the action head (objects_to_head, or "
                                "ee_to_head with object_loss > 0)")
            if not self.steer_noise_m >= 0:
                raise TypeError(f"steer_noise_m must be >= 0 metres, got {hp['steer_noise_m']!r}")
            # the object targets' per-value scale (set_object_scale, from the training frames): noise in metres
            self.register_buffer("object_std", torch.ones(spec.object_targets))
        self.hand_loss = float(hp["hand_loss"])
        if not self.hand_loss >= 0:
            raise TypeError(f"hand_loss must be a weight >= 0, got {hp['hand_loss']!r}")
        self._hand_chain = None  # set by the trainer (set_hand_chain): training only, not saved
        self.hand_offsets = float(hp["hand_offsets"])
        if not self.hand_offsets >= 0:
            raise TypeError(f"hand_offsets must be a weight >= 0, got {hp['hand_offsets']!r}")
        if self.hand_offsets > 0 and not (self.ee_to_head and self.object_head is not None):
            raise TypeError("hand_offsets needs ee_to_head and object_loss > 0 (the hands, and the target they "
                            "are placed relative to)")
        self.offset_width = spec.end_effectors if self.hand_offsets > 0 else 0
        hidden = hp["hidden"]
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(hp["dropout"]),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, spec.chunk * (spec.action_dim + self.offset_width)))

    def set_hand_statistics(self, ee_mean, ee_std, target_mean=None, target_std=None) -> None:
        """Normalization of the hand positions (metres, per value) and, with an object head, the scale of its
        target estimate (its first three values: collector.policy.object_targets) to turn it back into metres."""
        self.ee_mean.copy_(torch.as_tensor(ee_mean, dtype=torch.float32))
        self.ee_std.copy_(torch.as_tensor(ee_std, dtype=torch.float32))
        if target_mean is not None:
            self.target_mean.copy_(torch.as_tensor(target_mean, dtype=torch.float32)[:3])
            self.target_std.copy_(torch.as_tensor(target_std, dtype=torch.float32)[:3])

    def set_object_scale(self, std) -> None:
        """The object targets' std per value (metres), to draw steer_recorded's noise in metres."""
        self.object_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def set_hand_chain(self, chain, action_mean, action_std) -> None:
        """The robot's forward kinematics over the action's joints (collector.policy.hand_chain) and the
        action normalization, which the hand loss needs to turn normalized targets back into angles."""
        self._hand_chain = chain
        self._action_scale = (torch.as_tensor(action_mean, dtype=torch.float32),
                              torch.as_tensor(action_std, dtype=torch.float32))

    def predict_chunk(self, batch: PolicyBatch) -> torch.Tensor:
        return self._forward(batch)[0]

    def predict_chunk_and_objects(self, batch: PolicyBatch) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Both from one pass: the chunk, and the object head's estimate (normalized) or None."""
        return self._forward(batch)[:2]

    def predict_chunk_objects_offsets(self, batch: PolicyBatch):
        """All three from one pass: the chunk, the object head's estimate (normalized) and the hands' offsets
        from the target, (B, chunk, 3 x end effectors) metres (hand_offsets)."""
        chunk, objects, offsets = self._forward(batch)
        return chunk, objects, offsets * OFFSET_SCALE_M

    def target_in_metres(self, objects: torch.Tensor) -> torch.Tensor:
        """The named target's estimate (B, 3) in metres, from the head's normalized output; needs the hands'
        statistics (ee_to_head), which carry the targets' scale."""
        return objects[:, :3] * self.target_std + self.target_mean

    def predict_objects(self, batch: PolicyBatch) -> torch.Tensor:
        """The object head's estimate, normalized as its targets (collector.policy.object_targets); None
        without an object head (object_loss 0)."""
        return self._forward(batch)[1]

    def _encode(self, batch: PolicyBatch) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """(image features or None without cameras, conditioning embedding)."""
        conditioning = self.conditioning(batch["conditioning"]).sum(dim=1)
        features = None
        if self.spec.cameras and self.keypoint_features:
            features = encode_keypoints(self.backbone, batch["images"])
        elif self.spec.cameras:
            film = None if self.film is None else self.film(conditioning).split(self._film_widths, dim=1)
            features = encode_cameras(self.backbone, batch["images"], film).flatten(1)
        return features, conditioning

    def _forward(self, batch: PolicyBatch):
        """(chunk, the object head's estimate or None, the hands' offsets from the target in decimetres or
        None)."""
        features, conditioning = self._encode(batch)
        objects = None
        if self.object_head is not None:
            objects = self.object_head(torch.cat([features, conditioning], dim=1))
        parts = [batch["state"], conditioning]
        if features is not None and self.images_to_head:
            parts.insert(0, features)
        steering = objects.detach() if objects is not None and self.detach_objects else objects
        if self.steer_recorded and self.training and "objects" in batch:
            steering = self._recorded_steering(batch, steering)
        if self.objects_to_head:
            parts.append(steering)
        if self.ee_to_head:
            parts.extend(self._hand_inputs(batch["ee"], steering))
        out = self.head(torch.cat(parts, dim=1)).view(-1, self.spec.chunk, self.spec.action_dim + self.offset_width)
        offsets = out[..., self.spec.action_dim:] if self.offset_width else None
        return out[..., :self.spec.action_dim], objects, offsets

    def _recorded_steering(self, batch: PolicyBatch, estimate: torch.Tensor) -> torch.Tensor:
        """The recorded positions (normalized as the estimate), noised, where the frame has them; else the
        estimate (a real robot's takes record no object poses)."""
        recorded = batch["objects"].to(estimate)
        if self.steer_noise_m > 0:
            recorded = recorded + torch.randn_like(recorded) * (self.steer_noise_m / self.object_std)
        return torch.where(batch["objects_mask"].to(torch.bool), recorded, estimate)

    def _hand_inputs(self, ee: torch.Tensor, objects: Optional[torch.Tensor]):
        inputs = [(ee - self.ee_mean) / self.ee_std]
        if objects is not None:
            target = self.target_in_metres(objects)
            inputs.append((target.repeat(1, ee.shape[1] // 3) - ee) / OFFSET_SCALE_M)
        return inputs

    def loss(self, batch: PolicyBatch) -> Tuple[torch.Tensor, Dict[str, float]]:
        chunk, predicted, offsets = self._forward(batch)
        l1 = masked_l1(chunk, batch["action"], batch["action_is_pad"])
        total, parts = l1, {"l1": float(l1.detach())}
        if predicted is not None:
            objects = _objects_l1(predicted, batch)
            total = total + self.object_loss * objects
            parts["objects"] = float(objects.detach())
        recorded = None
        if self.hand_loss > 0 or offsets is not None:
            recorded = self._recorded_hands(batch, "hand_loss" if self.hand_loss > 0 else "hand_offsets")
        if self.hand_loss > 0:
            hands = self._hands_l1(chunk, batch, recorded)
            total = total + self.hand_loss * hands
            parts["hands"] = float(hands.detach())
        if offsets is not None:
            placed = self._offsets_l1(offsets, batch, recorded)
            total = total + self.hand_offsets * placed
            parts["offsets"] = float(placed.detach())
        return total, parts

    def _to_angles(self, normalized: torch.Tensor) -> torch.Tensor:
        mean, std = (t.to(normalized) for t in self._action_scale)
        return normalized * std + mean

    def _recorded_hands(self, batch: PolicyBatch, needed_by: str) -> torch.Tensor:
        """Where the recorded targets put the hands, (B, chunk, 3 x end effectors) metres: the hand loss's and
        the offsets' common reference, computed once per step."""
        if self._hand_chain is None:
            raise TypeError(f"{needed_by} needs the robot's kinematics: set_hand_chain before training")
        with torch.no_grad():
            return self._hand_chain(self._to_angles(batch["action"]))

    def _offsets_l1(self, offsets: torch.Tensor, batch: PolicyBatch, recorded: torch.Tensor) -> torch.Tensor:
        """Mean distance per coordinate, in decimetres, between the predicted offsets of the hands from the
        target and where the recorded targets put them relative to the frame's recorded target, over the
        chunk steps that exist in frames that recorded the target."""
        target = self.target_in_metres(batch["objects"].to(offsets))
        placed = (recorded - target.repeat(1, recorded.shape[-1] // 3)[:, None]) / OFFSET_SCALE_M
        is_pad = batch["action_is_pad"] | ~batch["objects_mask"][:, :1].to(torch.bool)
        return masked_l1(offsets, placed, is_pad)

    def _hands_l1(self, chunk: torch.Tensor, batch: PolicyBatch,
                  recorded: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean distance per coordinate, in decimetres, between where the predicted and the recorded
        targets put the hands (`recorded`, else from the batch), over the chunk steps that exist."""
        if recorded is None:
            recorded = self._recorded_hands(batch, "hand_loss")
        predicted = self._hand_chain(self._to_angles(chunk))
        return masked_l1(predicted / OFFSET_SCALE_M, recorded / OFFSET_SCALE_M, batch["action_is_pad"])

    def object_loss_on(self, batch: PolicyBatch) -> torch.Tensor:
        """The object head's masked L1 on a batch of images, conditioning and object targets alone (no
        state, no actions: scene views, collector.policy.scene_views); unweighted."""
        if self.object_head is None:
            raise TypeError("this policy has no object head (object_loss 0)")
        features, conditioning = self._encode(batch)
        return _objects_l1(self.object_head(torch.cat([features, conditioning], dim=1)), batch)


def _objects_l1(predicted: torch.Tensor, batch: PolicyBatch) -> torch.Tensor:
    mask = batch["objects_mask"].to(predicted.dtype)
    return ((predicted - batch["objects"]).abs() * mask).sum() / mask.sum().clamp_min(1.0)
