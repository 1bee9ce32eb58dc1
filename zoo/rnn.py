"""Recurrent models: nn.LSTM / nn.GRU pack 4 (resp. 3) gates into weight_ih/weight_hh,
so pruning hidden units means slicing gate blocks consistently in both matrices
(and the recurrent input dim of weight_hh and of the next layer)."""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.init import finalize


class RecurrentClassifier(nn.Module):
    def __init__(self, cell: type[nn.LSTM | nn.GRU], c_in: int = 16, proj: int = 32, hidden: int = 48, num_classes: int = 5) -> None:
        super().__init__()
        # An MLP before the RNN: its hidden layer is prunable, its output (the RNN input) is not.
        self.encoder = nn.Sequential(nn.Linear(c_in, 2 * proj), nn.ReLU())
        self.proj = nn.Linear(2 * proj, proj)
        self.act = nn.ReLU()
        self.rnn = cell(proj, hidden, num_layers=2, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.act(self.proj(self.encoder(x))))
        return self.head(self.norm(out[:, -1]))  # last time step


def lstm_model() -> tuple[nn.Module, torch.Tensor]:
    """Linear -> 2-layer LSTM (batch_first) -> LayerNorm -> Linear on the last step."""
    torch.manual_seed(0)
    return finalize(RecurrentClassifier(nn.LSTM)), torch.randn(1, 10, 16)


def gru_model() -> tuple[nn.Module, torch.Tensor]:
    """Same with a 2-layer GRU (3 packed gates instead of 4)."""
    torch.manual_seed(0)
    return finalize(RecurrentClassifier(nn.GRU)), torch.randn(1, 10, 16)
