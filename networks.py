"""The networks a configuration asks for, and what feeds them (SPEC §3): the frozen
random encoder that mixes the latents, the network inputs built from task
observations, the network factory, and hidden states of a trained network.
The network classes themselves are in RNN.py and transformer.py."""
import torch
from torch import nn

import ensemble
import transformer
from RNN import LSTM, RNN

# noise_enc=True: instead of input noise, noise of std n_sd_in · ENC_NOISE_SCALE is added to
# each encoder feature on the stimulus steps (the paper's setting: 0.1 at n_sd_in = 2,
# half the per-step input noise std n_sd_in / sqrt(dt) = 0.2 at dt = 100)
ENC_NOISE_SCALE = 1 / 20


class Square(nn.Module):
    """The quadratic encoder nonlinearity ('Quad')."""

    def forward(self, x):
        return x * x


def build_encoder(config, n_members=1):
    """Linear(D, enc_hidden) → act → Linear(enc_hidden, enc_hidden) → act →
    Linear(enc_hidden, enc_out), frozen; None when the configuration does not encode.
    Module keys 0/2/4 match the paper's Sequential encoder."""
    if not config['encode']:
        return None
    # in place: the encoder only ever runs without gradients (network_inputs)
    act = (lambda: nn.ReLU(inplace=True)) if config['activ_enc'] == 'relu' else Square
    hidden, out = config['enc_hidden'], config['enc_out']
    enc = nn.Sequential(ensemble.Linear(config['n_dim'], hidden, n_members), act(),
                        ensemble.Linear(hidden, hidden, n_members), act(),
                        ensemble.Linear(hidden, out, n_members))
    return enc.requires_grad_(False)


def network_inputs(ob, env, encoder=None, enc_noise=None):
    """Observations (M, B, T, n_obs), or (B, T, n_obs) for one network → network
    inputs: the D stimulus channels go through the encoder at every step; fixation
    and rule channels pass unmixed ([fixation, encoded stimulus, rules]).
    `enc_noise` (shape of the encoder output) is added after the encoder."""
    if encoder is None:
        return ob
    first = 1 if env.fixation else 0
    stim = ob[..., first:first + env.n_dim]
    with torch.no_grad():  # a single network's inputs (B, T, ·) have no member dim
        code = encoder(stim[None])[0] if stim.dim() == 3 else encoder(stim)
    if enc_noise is not None:
        code = code + enc_noise
    return torch.cat([ob[..., :first], code, ob[..., first + env.n_dim:]], dim=-1)


def n_inputs(env, config):
    """Network input size for a task, with or without the encoder."""
    return env.n_obs - env.n_dim + config['enc_out'] if config['encode'] else env.n_obs


def build_network(config, n_in, n_out, n_members=1):
    """The network a configuration asks for: 'RNN', 'LSTM' or 'gpt-2'. Every network
    returns (hidden states, linear readout) from `forward`."""
    kind, n_neu = config['network'], config['n_neu']
    if kind == 'RNN':
        return RNN(n_in, n_neu, n_out, n_sd=config['n_sd_net'], activation=config['activation'],
                   tau=config['tau'], dt=config['dt'], leaky=config['leaky'], init=config['init'],
                   n_members=n_members)
    if kind == 'LSTM':
        return LSTM(n_in, n_neu, n_out, n_members=n_members)
    if kind == 'gpt-2':
        return transformer.GPT(n_in, n_out, n_embd=n_neu, n_layer=config['n_layer'],
                               n_head=config['n_head'], dropout=config['dropout'], n_members=n_members)
    raise ValueError(f"network={kind!r} is not allowed: expected 'RNN', 'LSTM' or 'gpt-2'")


# Trials per forward pass of hidden_states, per device type. On a CPU a pass's encoder
# activations (chunk × T × enc_hidden floats) should stay in the core's 2 MiB L2 cache:
# 256 trials run 1.4-1.6× faster than 4096 (paper-sized RNN and LSTM, 1 thread), with
# bit-identical states (each trial's arithmetic does not depend on the others in its pass).
# A GPU needs large passes to be busy.
CHUNK = {'cpu': 256}
CHUNK_OTHER = 4096  # cuda and any other device


def hidden_states(net, encoder, env, ob, last_only=False, chunk=None):
    """Hidden states of a single trained network for observations `ob` (B, T, n_obs)
    (numpy or torch): (B, T, N), or (B, N) at the last step with `last_only`.
    Runs without gradients, `chunk` trials at a time (default: CHUNK for the
    network's device), so large evaluations fit in memory and in cache."""
    device = next(net.parameters()).device
    chunk = chunk or CHUNK.get(device.type, CHUNK_OTHER)
    ob = torch.as_tensor(ob, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for part in ob.split(chunk):
            h, _ = net(network_inputs(part.to(device), env, encoder))
            out.append((h[:, -1] if last_only else h).cpu())
    return torch.cat(out)
