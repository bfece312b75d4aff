"""The PyTorch twin of an nnctl rnn (+ dense) model, for the agreement tests: torch.nn.RNN and
Linear in float64 holding nnctl's weights, and their weights read back under nnctl's names."""

from __future__ import annotations


def torch_twin(torch, arrays: dict, nonlinearity: str = "tanh"):
    """(rnn, head, trainable parameters) holding `arrays`, named as in an nnctl checkpoint
    (layers.0.W_x, W_h, b and, when present, layers.1.W, b). Torch's second rnn bias is held
    at 0: nnctl's single b is the sum of the two."""
    w_x = arrays["layers.0.W_x"]
    rnn = torch.nn.RNN(w_x.shape[0], w_x.shape[1], nonlinearity=nonlinearity, batch_first=True,
                       dtype=torch.float64)
    head = None
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(w_x.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(arrays["layers.0.W_h"].T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(arrays["layers.0.b"]))
        rnn.bias_hh_l0.zero_()
        if "layers.1.W" in arrays:
            w = arrays["layers.1.W"]
            head = torch.nn.Linear(w.shape[0], w.shape[1], dtype=torch.float64)
            head.weight.copy_(torch.from_numpy(w.T))
            head.bias.copy_(torch.from_numpy(arrays["layers.1.b"]))
    rnn.bias_hh_l0.requires_grad_(False)
    params = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0]
    if head is not None:
        params += [head.weight, head.bias]
    return rnn, head, params


def nnctl_arrays(rnn, head) -> dict:
    """The twin's weights under nnctl's names."""
    return {
        "layers.0.W_x": rnn.weight_ih_l0.detach().numpy().T,
        "layers.0.W_h": rnn.weight_hh_l0.detach().numpy().T,
        "layers.0.b": rnn.bias_ih_l0.detach().numpy(),
        "layers.1.W": head.weight.detach().numpy().T,
        "layers.1.b": head.bias.detach().numpy(),
    }
