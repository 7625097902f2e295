//! Our ONNX `LSTM` for tract, registered with its loader in place of tract's
//! (as the tree ensemble is). tract lowers an LSTM to a `Scan` that runs a
//! sub-plan per time step; for the ensemble's small model (2 layers of 8
//! units over 10 steps) that per-step machinery (tensor copies, allocations,
//! shape changes), not the arithmetic, was the time. Here the whole sequence
//! is one op with its weights read once at load, and a fresh state every
//! call by construction (nothing outlives `eval`).
//!
//! Supported: the forward direction, layout 0 (`[seq, batch, input]`), the
//! default activations (sigmoid, tanh, tanh), no clip, no peepholes, no
//! coupled input-forget gate, no `sequence_lens`, initial states absent or
//! constant; W, R and B constant (initializers, as exporters write them).
//! Anything else is refused at load with the reason. Gates are in ONNX's
//! order: input, output, forget, cell.

use tract_onnx::model::{OnnxOpRegister, ParsingContext, optional_inputs, optional_outputs};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub(crate) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("LSTM", parse);
}

/// Where the node's optional inputs and outputs sit among those present.
#[derive(Debug, Clone)]
struct Slots {
    bias: Option<usize>,
    initial_h: Option<usize>,
    initial_c: Option<usize>,
    /// Y, Y_h, Y_c: the op's output index of each, when the node has it.
    outputs: [Option<usize>; 3],
}

#[derive(Debug, Clone)]
struct LstmExpansion {
    hidden: usize,
    slots: Slots,
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let refuse = |what: &str| -> TractResult<()> { bail!("{}: LSTM {what} is not supported (forward, layout 0, default activations only)", node.name) };
    let hidden: i64 = node.get_attr("hidden_size")?;
    if node.get_attr_opt::<&str>("direction")?.is_some_and(|d| d != "forward") {
        refuse("direction other than forward")?;
    }
    if node.get_attr_opt::<i64>("layout")?.unwrap_or(0) != 0 {
        refuse("layout 1")?;
    }
    if node.get_attr_opt::<i64>("input_forget")?.unwrap_or(0) != 0 {
        refuse("input_forget")?;
    }
    if node.get_attr_opt::<f32>("clip")?.is_some() {
        refuse("clip")?;
    }
    if let Some(acts) = node.get_attr_opt_tvec::<&str>("activations")?
        && acts.iter().map(|a| a.to_ascii_lowercase()).collect::<Vec<_>>() != ["sigmoid", "tanh", "tanh"]
    {
        refuse("with other activations")?;
    }
    let mut inputs = optional_inputs(node).skip(3);
    let mut next = || inputs.next().flatten();
    let (bias, lens, initial_h, initial_c, peepholes) = (next(), next(), next(), next(), next());
    if lens.is_some() {
        refuse("sequence_lens")?;
    }
    if peepholes.is_some() {
        refuse("peepholes")?;
    }
    let mut outputs = optional_outputs(node);
    let outputs = [outputs.next().flatten(), outputs.next().flatten(), outputs.next().flatten()];
    Ok((expand(LstmExpansion { hidden: hidden as usize, slots: Slots { bias, initial_h, initial_c, outputs } }), vec![]))
}

impl Expansion for LstmExpansion {
    fn name(&self) -> StaticName {
        "LSTM".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.slots.outputs.iter().flatten().count())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 3)?;
        let h = self.hidden.to_dim();
        for (which, slot) in self.slots.outputs.iter().enumerate() {
            let Some(o) = *slot else { continue };
            let out = &outputs[o];
            s.equals(&out.datum_type, f32::datum_type())?;
            if which == 0 {
                s.equals(&out.rank, 4)?;
                s.equals(&out.shape[0], &inputs[0].shape[0])?;
                s.equals(&out.shape[1], 1.to_dim())?;
                s.equals(&out.shape[2], &inputs[0].shape[1])?;
                s.equals(&out.shape[3], h.clone())?;
            } else {
                s.equals(&out.rank, 3)?;
                s.equals(&out.shape[0], 1.to_dim())?;
                s.equals(&out.shape[1], &inputs[0].shape[1])?;
                s.equals(&out.shape[2], h.clone())?;
            }
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let konst = |at: usize, what: &str| -> TractResult<Vec<f32>> {
            let fact = model.outlet_fact(inputs[at])?;
            let Some(k) = fact.konst.as_ref() else { bail!("{prefix}: LSTM {what} must be a constant (an initializer)") };
            Ok(k.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
        };
        let (h, input) = (self.hidden, model.outlet_fact(inputs[0])?.shape[2].to_usize()?);
        let w = konst(1, "W")?;
        let r = konst(2, "R")?;
        if w.len() != 4 * h * input || r.len() != 4 * h * h {
            bail!("{prefix}: LSTM weights of {} and {} values for {input} inputs and {h} units (one direction)", w.len(), r.len());
        }
        let mut bias = vec![0f32; 4 * h];
        if let Some(b) = self.slots.bias {
            let b = konst(b, "B")?;
            if b.len() != 8 * h {
                bail!("{prefix}: LSTM bias of {} values for {h} units", b.len());
            }
            bias.iter_mut().enumerate().for_each(|(k, v)| *v = b[k] + b[4 * h + k]);
        }
        let state = |slot: Option<usize>, what| slot.map(|s| konst(s, what)).transpose();
        let (h0, c0) = (state(self.slots.initial_h, "initial_h")?, state(self.slots.initial_c, "initial_c")?);
        let op = LstmSeq(Arc::new(Weights { hidden: h, input, w, r, bias, h0, c0, outputs: self.slots.outputs }));
        model.wire_node(prefix, op, &inputs[..1])
    }
}

#[derive(Debug)]
struct Weights {
    hidden: usize,
    input: usize,
    /// `[4H, I]` and `[4H, H]`, row-major.
    w: Vec<f32>,
    r: Vec<f32>,
    /// Wb + Rb, `[4H]`.
    bias: Vec<f32>,
    /// `[1, batch, H]` when given (else zeros).
    h0: Option<Vec<f32>>,
    c0: Option<Vec<f32>>,
    outputs: [Option<usize>; 3],
}

/// The typed op: a whole sequence in one eval; equal only to itself.
#[derive(Debug, Clone)]
pub struct LstmSeq(Arc<Weights>);

impl PartialEq for LstmSeq {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for LstmSeq {}

impl LstmSeq {
    /// Multiply-adds of `steps` steps for one batch row.
    pub fn fma(&self, steps: usize) -> u64 {
        (steps * 4 * self.0.hidden * (self.0.input + self.0.hidden)) as u64
    }
}

/// The logistic function, its argument clamped to +-30 (where it is 1 or
/// 9e-14 from 0 in f32). A saturated gate's pre-activation can be in the
/// hundreds, and `expf` of such a number takes libm's overflow/underflow
/// path (errno, a subnormal to raise the exception): that was half of this
/// op's time on rows from the days after a crash.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

impl Op for LstmSeq {
    fn name(&self) -> StaticName {
        "StratboxLstm".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LstmSeq {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        crate::clear_upper_vector_state();
        let x = args_1!(inputs);
        let x = x.cast_to::<f32>()?;
        let view = x.to_plain_array_view::<f32>()?;
        let (seq, batch, input) = match view.shape() {
            &[s, b, i] => (s, b, i),
            other => bail!("LSTM input of shape {other:?}"),
        };
        let m = &*self.0;
        let h = m.hidden;
        if input != m.input {
            bail!("LSTM input of {input} features, weights for {}", m.input);
        }
        let x = view.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let mut y = vec![0f32; seq * batch * h];
        let mut yh = vec![0f32; batch * h];
        let mut yc = vec![0f32; batch * h];
        let mut gates = vec![0f32; 4 * h];
        for b in 0..batch {
            let (hs, cs) = (&mut yh[b * h..(b + 1) * h], &mut yc[b * h..(b + 1) * h]);
            if let Some(h0) = &m.h0 {
                hs.copy_from_slice(&h0[b * h..(b + 1) * h]);
            }
            if let Some(c0) = &m.c0 {
                cs.copy_from_slice(&c0[b * h..(b + 1) * h]);
            }
            for t in 0..seq {
                let xt = &x[(t * batch + b) * input..(t * batch + b + 1) * input];
                for (g, out) in gates.iter_mut().enumerate() {
                    let wx: f32 = m.w[g * input..(g + 1) * input].iter().zip(xt).map(|(w, v)| w * v).sum();
                    let rh: f32 = m.r[g * h..(g + 1) * h].iter().zip(hs.iter()).map(|(r, v)| r * v).sum();
                    *out = wx + rh + m.bias[g];
                }
                for k in 0..h {
                    let (i, o, f, c) = (sigmoid(gates[k]), sigmoid(gates[h + k]), sigmoid(gates[2 * h + k]), gates[3 * h + k].tanh());
                    cs[k] = f * cs[k] + i * c;
                    hs[k] = o * cs[k].tanh();
                }
                y[(t * batch + b) * h..(t * batch + b + 1) * h].copy_from_slice(hs);
            }
        }
        let tensors = [tensor1(&y).into_shape(&[seq, 1, batch, h])?, tensor1(&yh).into_shape(&[1, batch, h])?, tensor1(&yc).into_shape(&[1, batch, h])?];
        let mut out: TVec<Option<TValue>> = tvec![None, None, None];
        for (which, t) in tensors.into_iter().enumerate() {
            if let Some(at) = m.outputs[which] {
                out[at] = Some(t.into_tvalue());
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

impl TypedOp for LstmSeq {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (seq, batch) = (inputs[0].shape[0].clone(), inputs[0].shape[1].clone());
        let h = self.0.hidden.to_dim();
        let facts = [
            f32::fact([seq, 1.to_dim(), batch.clone(), h.clone()]),
            f32::fact([1.to_dim(), batch.clone(), h.clone()]),
            f32::fact([1.to_dim(), batch, h]),
        ];
        let mut out: TVec<Option<TypedFact>> = tvec![None, None, None];
        for (which, f) in facts.into_iter().enumerate() {
            if let Some(at) = self.0.outputs[which] {
                out[at] = Some(f);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    as_op!();
}
