//! Our ONNX `Softmax` for tract, registered in place of tract's: in the
//! ensemble's Transformer the attention softmax (`[1, 4, 10, 10]`, lanes of
//! 10) took 26 of its 68 us a row in tract's kernel, which works in blocks
//! of 64 values. Here each lane is a max, an exp and a division, in f32.
//!
//! Semantics by opset: from 13 the softmax runs along `axis` (default -1);
//! before 13 the input is seen as 2-D, `[product of dims before axis,
//! product from axis on]` (default axis 1), and each row is normalised.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub(crate) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("Softmax", parse);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Lanes {
    axis: i64,
    /// Before opset 13: everything from `axis` on is one lane.
    flatten: bool,
}

fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let axis: Option<i64> = node.get_attr_opt("axis")?;
    let flatten = ctx.onnx_operator_set_version < 13;
    let axis = axis.unwrap_or(if flatten { 1 } else { -1 });
    Ok((expand(SoftmaxExpansion(Lanes { axis, flatten })), vec![]))
}

#[derive(Debug, Clone)]
struct SoftmaxExpansion(Lanes);

impl Expansion for SoftmaxExpansion {
    fn name(&self) -> StaticName {
        "Softmax".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let rank = model.outlet_fact(inputs[0])?.rank() as i64;
        let axis = if self.0.axis < 0 { self.0.axis + rank } else { self.0.axis };
        if !(0..rank).contains(&axis) {
            bail!("{prefix}: Softmax axis {} of a rank-{rank} input", self.0.axis);
        }
        model.wire_node(prefix, SoftmaxOp(Lanes { axis, flatten: self.0.flatten }), inputs)
    }
}

/// The typed op (`axis` resolved, non-negative).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SoftmaxOp(Lanes);

impl Op for SoftmaxOp {
    fn name(&self) -> StaticName {
        "StratboxSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for SoftmaxOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        crate::clear_upper_vector_state();
        let input = args_1!(inputs);
        let shape: TVec<usize> = input.shape().into();
        let mut t = input.into_tensor();
        let axis = self.0.axis as usize;
        // A lane is `len` values `inner` apart; one starts at each (outer, inner) pair.
        let (outer, len, inner) = if self.0.flatten {
            (shape[..axis].iter().product::<usize>(), shape[axis..].iter().product::<usize>(), 1)
        } else {
            (shape[..axis].iter().product::<usize>(), shape[axis], shape[axis + 1..].iter().product::<usize>())
        };
        let mut view = t.try_as_plain_ram_mut()?;
        let data = view.as_slice_mut::<f32>()?;
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * len + k) * inner + i;
                let max = (0..len).map(|k| data[at(k)]).fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for k in 0..len {
                    // Below -87 the exp is under f32's smallest normal: 0,
                    // without libm's slow underflow path.
                    let d = data[at(k)] - max;
                    let e = if d < -87.0 { 0.0 } else { d.exp() };
                    data[at(k)] = e;
                    sum += e;
                }
                for k in 0..len {
                    data[at(k)] /= sum;
                }
            }
        }
        drop(view);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for SoftmaxOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(axis: i64, flatten: bool, shape: &[usize], values: &[f32]) -> Vec<f32> {
        let t = Tensor::from_shape(shape, values).unwrap();
        let out = SoftmaxOp(Lanes { axis, flatten }).eval_out_of_plan(tvec!(t.into_tvalue())).unwrap().unwrap();
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn lanes_follow_the_opset() {
        let x = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
        let e = |v: f32, of: &[f32]| v.exp() / of.iter().map(|x| x.exp()).sum::<f32>();
        // Opset 13, last axis of [2, 3]: each row.
        let y = run(1, false, &[2, 3], &x);
        assert!((y[2] - e(3.0, &[1.0, 2.0, 3.0])).abs() < 1e-6 && (y[4] - 1.0 / 3.0).abs() < 1e-6, "{y:?}");
        // Opset 13, axis 0: each column.
        let y = run(0, false, &[2, 3], &x);
        assert!((y[0] - 0.5).abs() < 1e-6 && (y[2] - e(3.0, &[3.0, 1.0])).abs() < 1e-6, "{y:?}");
        // Before 13, axis 1 of [2, 1, 3]: everything from axis 1 on is one lane.
        let y = run(1, true, &[2, 1, 3], &x);
        assert!((y[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6 && (y[3] - 1.0 / 3.0).abs() < 1e-6, "{y:?}");
        // A far tail is zero, not a NaN.
        let y = run(0, false, &[2], &[0.0, -1e30]);
        assert_eq!(y, vec![1.0, 0.0]);
    }
}
