"""Closed-form counts against numbers worked out by hand (never by calling the code under test)."""

import numpy as np
import pytest

from neurosim.cards import load_model
from neurosim.cost import analytic
from neurosim.errors import NeurosimError
from neurosim.ir import Layer, Network, Neuron


def test_appendix_b_terms_on_spikingbert_shape():
    # N = 128 tokens, D = 768, head dimension H = 64, one timestep
    assert analytic.acs_qkv(128, 768, 64, 1) == 18_874_368   # 3 * 128 * 768 * 64
    assert analytic.acs_attn(128, 64, 1) == 2_097_152        # 2 * 128^2 * 64
    assert analytic.acs_fc(128, 768, 64, 1) == 6_291_456     # 128 * 768 * 64
    assert analytic.acs_n(128, 768, 1) == 196_608            # 2 * 128 * 768
    assert analytic.acs_qkv(128, 768, 64, 85) == 85 * 18_874_368


def test_unpruned_spikingbert_4l_at_t85_is_3_1659e11():
    # per layer and step: 12 heads x 27,262,976 + 3072 neurons x 196,608 = 931,135,488
    # M = 4 layers x 85 steps x 931,135,488 = 316,586,065,920
    net = load_model("spikingbert-4l")
    assert analytic.paper_m(net) == 316_586_065_920
    assert f"{analytic.paper_m(net):.4e}" == "3.1659e+11"
    assert analytic.normalized_c(net) == 1.0


def _tiny(head_masks=None, neuron_masks=None):
    from neurosim.cards import EncoderCard, encoder_network
    import yaml
    from neurosim.paths import MODELS_DIR
    data = yaml.safe_load((MODELS_DIR / "tiny-encoder.yaml").read_text())
    data.update(head_masks=head_masks, neuron_masks=neuron_masks)
    return encoder_network(EncoderCard.model_validate(data))


def test_eq14_normalized_c_small_case():
    # tiny encoder: N=4, D=8, 2 heads of H=4, 16 intermediate neurons, t = (4, 2), baseline T = 4.
    # per head and step: QKV 3*4*8*4 = 384, attn 2*16*4 = 128, fc 4*8*4 = 128 -> 640
    # per neuron and step: 2*4*8 = 64.   per layer and step (unpruned): 2*640 + 16*64 = 2304
    net = _tiny()
    assert analytic.paper_m(net) == 2304 * 4 + 2304 * 2          # 13,824
    assert analytic.normalized_c(net) == pytest.approx(13824 / 18432)  # baseline 2304*4*2 = 18,432
    # prune head 1 of layer 1 and half the neurons of layer 0:
    # layer 0: (2*640 + 8*64) * 4 = 7168 ; layer 1: (640 + 16*64) * 2 = 3328 -> 10,496
    pruned = _tiny(head_masks=[[1, 1], [1, 0]], neuron_masks=[[1] * 8 + [0] * 8, [1] * 16])
    assert analytic.paper_m(pruned) == 10_496
    assert analytic.normalized_c(pruned) == pytest.approx(10496 / 18432)


def test_structural_count_tiny_encoder_by_hand():
    # rates: input .5, k .5, v .25, attention .5, attn_out .25, intermediate .5, output .25
    # layer 0 (t=4): k 4*4*.5*8*8=512, v 512, AV 2 heads*16*4*4*.25=128, attn_out 4*4*.5*64=512,
    #                intermediate 4*4*.25*8*16=512, output 4*4*.5*16*8=1024        -> 3200
    # layer 1 (t=2): k 4*2*.25*64=128, v 128, AV 2*16*4*2*.25=64, attn_out 4*2*.5*64=256,
    #                intermediate 4*2*.25*128=256, output 4*2*.5*128=512            -> 1344
    counts = analytic.structural_counts(_tiny())
    assert counts.acs.sum() == 3200 + 1344
    # MACs: Q 4*4*64=1024 and 4*2*64=512; Q.K^T 2 heads*16*4*4=512 and 2*16*4*2=256
    assert counts.macs.sum() == 1024 + 512 + 512 + 256
    by_layer = dict(zip(counts.layer, counts.acs))
    assert by_layer["block0.output"] == 1024 and by_layer["block1.attention"] == 64


def test_dense_structural_total_equals_paper_form_for_spikingbert():
    # With every input spiking and D = hidden, structural ACs + MACs = the paper's M.
    net = load_model("spikingbert-4l")
    dense = analytic.structural_counts(net, activity=False)
    assert dense.acs.sum() + dense.macs.sum() == analytic.paper_m(net)


def test_masked_head_removes_downstream_work():
    # head 1 of layer 0 pruned: K and V compute only head 0's 4 outputs: 4*4*.5*8*4 = 256 each;
    # attention runs one head: AV 16*4*4*.25 = 64; attn_out sees 4 live inputs: 4*4*.5*4*8 = 256.
    counts = dict(zip(*[analytic.structural_counts(_tiny(head_masks=[[1, 0], [1, 1]]))[c]
                        for c in ("layer", "acs")]))
    assert counts["block0.k"] == 256 and counts["block0.v"] == 256
    assert counts["block0.attention"] == 64
    assert counts["block0.attn_out"] == 256


def test_masked_neurons_cost_nothing():
    # 12 of 16 intermediate neurons pruned in layer 0: intermediate 4*4*.25*8*4 = 128; output 4*4*.5*4*8 = 256
    net = _tiny(neuron_masks=[[1] * 4 + [0] * 12, [1] * 16])
    counts = dict(zip(*[analytic.structural_counts(net)[c] for c in ("layer", "acs")]))
    assert counts["block0.intermediate"] == 128
    assert counts["block0.output"] == 256


def test_structural_count_sequential_stack_by_hand():
    # 6 inputs at rate 0.5 -> 4 LIF neurons (rate 0.25, one masked) -> 2 outputs; 3 tokens, t = 5
    net = Network("mlp", [
        Layer("fc1", "linear", 6, 4, seq_len=3, timesteps=5, rate=0.25, neuron_mask=np.array([1, 1, 1, 0])),
        Layer("fc2", "linear", 4, 2, inputs=["fc1"], seq_len=3, timesteps=5, rate=0.5),
    ], input_size=6, input_rate=0.5)
    counts = analytic.structural_counts(net)
    assert list(counts.acs) == [3 * 5 * 0.5 * 6 * 3, 3 * 5 * 0.25 * 3 * 2]   # 135, 22.5
    assert list(counts.neuron_updates) == [3 * 5 * 3, 3 * 5 * 2]
    assert list(counts.spikes_out) == [3 * 5 * 3 * 0.25, 3 * 5 * 2 * 0.5]


def test_conv_counts_only_taps_inside_the_input():
    from neurosim.ir import Conv2dShape
    # 1 -> 2 channels, 3x3 input, 3x3 kernel, padding 1: 3x3 output.
    # valid taps per axis for outputs 0,1,2: 2,3,2 -> 7; per channel 7*7 = 49 connections; x2 channels = 98
    conv = Conv2dShape(in_channels=1, out_channels=2, in_height=3, in_width=3, kernel=3, padding=1)
    net = Network("cnn", [Layer("c", "conv2d", 9, 18, spec=conv, timesteps=2, rate=0.5)], input_size=9,
                  input_rate=1.0)
    assert analytic.structural_counts(net).acs[0] == 2 * 98


def test_multilevel_spikes_are_recorded_per_layer():
    net = Network("gif", [
        Layer("a", "linear", 2, 2, neuron=Neuron("gif", levels=3), rate=0.5),
        Layer("b", "linear", 2, 2, inputs=["a"], rate=0.5),
    ], input_size=2)
    assert list(analytic.structural_counts(net).input_spike_bits) == [1, 2]


def test_paper_form_refuses_non_encoders():
    net = Network("mlp", [Layer("fc", "linear", 2, 2, rate=0.1)], input_size=2)
    with pytest.raises(NeurosimError, match="SpikingBERT-style encoders"):
        analytic.paper_m(net)


def test_missing_rate_is_refused_with_the_layer_name():
    net = Network("mlp", [Layer("fc1", "linear", 2, 2), Layer("fc2", "linear", 2, 2, inputs=["fc1"])],
                  input_size=2)
    with pytest.raises(NeurosimError) as exc:
        analytic.structural_counts(net)
    assert exc.value.where == "layer 'fc1'" and exc.value.field == "rate"
