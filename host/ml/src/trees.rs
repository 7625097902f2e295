//! Our `TreeEnsembleClassifier` for tract, registered with its ONNX loader in
//! place of the built-in one (`tract_onnx::onnx().op_register`), so tract
//! stays the engine and no fork of it is needed.
//!
//! Why: tract 0.23's own tree code builds an `anyhow::Error` per tree per row
//! to detect a leaf and looks leaves up by walking all of them, so a row
//! costs the square of the tree count (232 us for 100 trees, against 7 us in
//! onnxruntime). Here a tree is a flat array of nodes walked from its root;
//! a leaf holds the range of its weights: a row costs the splits on its paths.
//!
//! Semantics are onnxruntime's for the classifier (aggregate SUM): scores per
//! class are `base_values` plus the weights of the leaves reached; then the
//! post transform (NONE, LOGISTIC, SOFTMAX). Binary models that write one
//! score (every leaf weight for class 0, two labels, as skl2onnx exports
//! them) give `[1 - p, p]`. The label is the class of the largest probability.
//! Outputs: labels (`[N]`, int64 or string as the model declares) and
//! probabilities (`[N, classes]`).

use std::collections::HashMap;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub(crate) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("TreeEnsembleClassifier", parse);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Logistic,
    Softmax,
}

/// One node; for a leaf, `yes..no` is its range in `Forest::weights`.
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    yes: u32,
    no: u32,
    split: Split,
    nan_yes: bool,
}

#[derive(Debug)]
struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// (class, weight) of every leaf, grouped by leaf.
    weights: Vec<(u32, f32)>,
    /// Scores written (1 in the binary layout, else one per label).
    scores: usize,
    base: Vec<f32>,
    post: Post,
    binary: bool,
    labels: Arc<Tensor>,
    /// The input must have more columns than this.
    max_feature: usize,
    /// Splits on the longest path of each tree, summed: the most one row costs.
    splits_per_row: u64,
}

/// The op in a typed model; equal only to itself (a forest is compared by identity).
#[derive(Debug, Clone)]
pub struct ForestClassifier(Arc<Forest>);

impl PartialEq for ForestClassifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ForestClassifier {}

impl ForestClassifier {
    /// Splits one row passes at most (for the model's cost per row).
    pub fn splits_per_row(&self) -> u64 {
        self.0.splits_per_row
    }
}

fn parse_split(s: &str) -> TractResult<Split> {
    Ok(match s {
        "BRANCH_LEQ" => Split::Leq,
        "BRANCH_LT" => Split::Lt,
        "BRANCH_GTE" => Split::Gte,
        "BRANCH_GT" => Split::Gt,
        "BRANCH_EQ" => Split::Eq,
        "BRANCH_NEQ" => Split::Neq,
        "LEAF" => Split::Leaf,
        other => bail!("node mode {other} is not supported (BRANCH_LEQ, _LT, _GTE, _GT, _EQ, _NEQ, LEAF are)"),
    })
}

fn same_len<T>(node: &NodeProto, name: &str, v: Vec<T>, n: usize) -> TractResult<Vec<T>> {
    if v.len() != n {
        bail!("{}: attribute {name} has {} values, {n} expected", node.name, v.len());
    }
    Ok(v)
}

fn parse(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(TreeClassifier(Arc::new(build(node)?))), vec![]))
}

fn build(node: &NodeProto) -> TractResult<Forest> {
    let labels = match (node.get_attr_opt_slice::<i64>("classlabels_int64s")?, node.get_attr_opt_tvec::<&str>("classlabels_strings")?) {
        (Some(ints), None) => rctensor1(ints),
        (None, Some(strs)) => rctensor1(&strs.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        _ => bail!("{}: exactly one of classlabels_int64s and classlabels_strings must be set", node.name),
    };
    let n_labels = labels.len();
    if n_labels < 2 {
        bail!("{}: {} class labels; a classifier needs two or more", node.name, n_labels);
    }
    if let Some(agg) = node.get_attr_opt::<&str>("aggregate_function")?
        && agg != "SUM"
    {
        bail!("{}: aggregate_function {agg} is not supported (a classifier sums)", node.name);
    }
    let post = match node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE") {
        "NONE" => Post::None,
        "LOGISTIC" => Post::Logistic,
        "SOFTMAX" => Post::Softmax,
        other => bail!("{}: post_transform {other} is not supported (NONE, LOGISTIC, SOFTMAX are)", node.name),
    };

    let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
    let n = tree_ids.len();
    if n == 0 {
        bail!("{}: no nodes", node.name);
    }
    let node_ids = same_len(node, "nodes_nodeids", node.get_attr_vec::<i64>("nodes_nodeids")?, n)?;
    let features = same_len(node, "nodes_featureids", node.get_attr_vec::<i64>("nodes_featureids")?, n)?;
    let values = same_len(node, "nodes_values", node.get_attr_vec::<f32>("nodes_values")?, n)?;
    let yes_ids = same_len(node, "nodes_truenodeids", node.get_attr_vec::<i64>("nodes_truenodeids")?, n)?;
    let no_ids = same_len(node, "nodes_falsenodeids", node.get_attr_vec::<i64>("nodes_falsenodeids")?, n)?;
    let modes = same_len(node, "nodes_modes", node.get_attr_vec::<&str>("nodes_modes")?, n)?;
    let nan_yes = match node.get_attr_opt_vec::<i64>("nodes_missing_value_tracks_true")? {
        Some(v) => same_len(node, "nodes_missing_value_tracks_true", v, n)?,
        None => vec![0; n],
    };
    let index: HashMap<(i64, i64), u32> = tree_ids.iter().zip(&node_ids).enumerate().map(|(i, (&t, &id))| ((t, id), i as u32)).collect();
    if index.len() != n {
        bail!("{}: a (tree, node) id appears twice", node.name);
    }
    let child = |tree: i64, id: i64| {
        index.get(&(tree, id)).copied().ok_or_else(|| format_err!("{}: tree {tree} refers to node {id}, which it does not have", node.name))
    };

    let leaf_trees: Vec<i64> = node.get_attr_vec("class_treeids")?;
    let m = leaf_trees.len();
    let leaf_nodes = same_len(node, "class_nodeids", node.get_attr_vec::<i64>("class_nodeids")?, m)?;
    let leaf_classes = same_len(node, "class_ids", node.get_attr_vec::<i64>("class_ids")?, m)?;
    let leaf_weights = same_len(node, "class_weights", node.get_attr_vec::<f32>("class_weights")?, m)?;
    if let Some(c) = leaf_classes.iter().find(|&&c| c < 0 || c as usize >= n_labels) {
        bail!("{}: a leaf weighs class {c}, outside the {n_labels} labels", node.name);
    }
    let binary = n_labels == 2 && leaf_classes.iter().all(|&c| c == 0);
    if binary && post == Post::Softmax {
        bail!("{}: a binary model writing one score cannot take a SOFTMAX post transform", node.name);
    }
    let scores = if binary { 1 } else { n_labels };
    let base = match node.get_attr_opt_vec::<f32>("base_values")? {
        None => vec![0.0; scores],
        // A binary model's single base value, or the same padded per class.
        Some(b) if binary && !b.is_empty() && b.len() <= 2 => vec![b[0]],
        Some(b) if b.len() == scores => b,
        Some(b) => bail!("{}: {} base_values for {scores} scores", node.name, b.len()),
    };

    let mut per_leaf: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
    for k in 0..m {
        let at = child(leaf_trees[k], leaf_nodes[k])?;
        per_leaf.entry(at).or_default().push((leaf_classes[k] as u32, leaf_weights[k]));
    }
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(m);
    let mut is_child = vec![false; n];
    for i in 0..n {
        let split = parse_split(modes[i])?;
        let (yes, no, feature) = if split == Split::Leaf {
            let start = weights.len() as u32;
            weights.extend(per_leaf.remove(&(i as u32)).unwrap_or_default());
            (start, weights.len() as u32, 0)
        } else {
            let (yes, no) = (child(tree_ids[i], yes_ids[i])?, child(tree_ids[i], no_ids[i])?);
            is_child[yes as usize] = true;
            is_child[no as usize] = true;
            if features[i] < 0 {
                bail!("{}: node {} of tree {} reads feature {}", node.name, node_ids[i], tree_ids[i], features[i]);
            }
            (yes, no, features[i] as u32)
        };
        nodes.push(Node { feature, threshold: values[i], yes, no, split, nan_yes: nan_yes[i] != 0 });
    }
    if let Some(&orphan) = per_leaf.keys().next() {
        bail!("{}: class weights on node {} of tree {}, which is not a leaf", node.name, node_ids[orphan as usize], tree_ids[orphan as usize]);
    }
    // A tree's root is its one node no other node points to.
    let mut roots: Vec<(i64, u32)> = (0..n).filter(|&i| !is_child[i]).map(|i| (tree_ids[i], i as u32)).collect();
    roots.sort();
    if roots.windows(2).any(|w| w[0].0 == w[1].0) {
        bail!("{}: a tree has more than one root (nodes no other node points to)", node.name);
    }
    let mut forest = Forest {
        max_feature: nodes.iter().filter(|x| x.split != Split::Leaf).map(|x| x.feature as usize).max().unwrap_or(0),
        nodes,
        roots: roots.into_iter().map(|(_, i)| i).collect(),
        weights,
        scores,
        base,
        post,
        binary,
        labels,
        splits_per_row: 0,
    };
    forest.splits_per_row = forest.roots.iter().map(|&r| forest.depth(r, 0)).sum::<TractResult<u64>>()?;
    Ok(forest)
}

impl Forest {
    /// Splits on the longest path below `at` (refusing a cycle).
    fn depth(&self, at: u32, level: u64) -> TractResult<u64> {
        if level > self.nodes.len() as u64 {
            bail!("a tree loops back on itself");
        }
        let node = self.nodes[at as usize];
        if node.split == Split::Leaf {
            return Ok(0);
        }
        Ok(1 + self.depth(node.yes, level + 1)?.max(self.depth(node.no, level + 1)?))
    }

    /// The probabilities of one row, written to `out`.
    fn row(&self, x: &[f32], out: &mut [f32]) {
        let mut scores = [0f32; 16];
        let mut heap;
        let scores: &mut [f32] = if self.scores <= scores.len() {
            &mut scores[..self.scores]
        } else {
            heap = vec![0f32; self.scores];
            &mut heap
        };
        scores.copy_from_slice(&self.base);
        for &root in &self.roots {
            let mut at = root as usize;
            loop {
                let node = &self.nodes[at];
                let v = x[node.feature as usize];
                let yes = match node.split {
                    Split::Leaf => break,
                    _ if v.is_nan() => node.nan_yes,
                    Split::Leq => v <= node.threshold,
                    Split::Lt => v < node.threshold,
                    Split::Gte => v >= node.threshold,
                    Split::Gt => v > node.threshold,
                    Split::Eq => v == node.threshold,
                    Split::Neq => v != node.threshold,
                };
                at = if yes { node.yes } else { node.no } as usize;
            }
            let leaf = &self.nodes[at];
            for &(class, w) in &self.weights[leaf.yes as usize..leaf.no as usize] {
                scores[class as usize] += w;
            }
        }
        let sigmoid = |s: f32| 1.0 / (1.0 + (-s).exp());
        if self.binary {
            let p = if self.post == Post::Logistic { sigmoid(scores[0]) } else { scores[0] };
            out[0] = 1.0 - p;
            out[1] = p;
            return;
        }
        match self.post {
            Post::None => out.copy_from_slice(scores),
            Post::Logistic => out.iter_mut().zip(scores.iter()).for_each(|(o, &s)| *o = sigmoid(s)),
            Post::Softmax => {
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for (o, &s) in out.iter_mut().zip(scores.iter()) {
                    *o = (s - max).exp();
                    sum += *o;
                }
                out.iter_mut().for_each(|o| *o /= sum);
            }
        }
    }
}

/// The loader's view: shapes inferred, then our typed op wired in.
#[derive(Debug, Clone)]
struct TreeClassifier(Arc<Forest>);

impl Expansion for TreeClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, self.0.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.0.labels.len().to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, ForestClassifier(self.0.clone()), inputs)
    }
}

impl Op for ForestClassifier {
    fn name(&self) -> StaticName {
        "StratboxTreeEnsembleClassifier".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} trees, {} nodes, {} splits per row at most", self.0.roots.len(), self.0.nodes.len(), self.0.splits_per_row)])
    }

    op_as_typed_op!();
}

impl EvalOp for ForestClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let x = input.to_plain_array_view::<f32>()?;
        let (rows, cols) = match x.shape() {
            &[r, c] => (r, c),
            other => bail!("input of shape {other:?}; rows of features expected"),
        };
        let f = &self.0;
        if cols <= f.max_feature {
            bail!("rows of {cols} features, but the trees read feature {}", f.max_feature);
        }
        let classes = f.labels.len();
        let mut probs = vec![0f32; rows * classes];
        let mut winners = Vec::with_capacity(rows);
        let mut row = vec![0f32; cols];
        for (r, out) in probs.chunks_mut(classes).enumerate() {
            // The view may be strided: copy the row out once.
            row.iter_mut().enumerate().for_each(|(c, v)| *v = x[[r, c]]);
            f.row(&row, out);
            let best = out.iter().enumerate().fold(0, |b, (i, &p)| if p > out[b] { i } else { b });
            winners.push(best);
        }
        let labels = if f.labels.datum_type() == DatumType::String {
            let view = f.labels.try_as_plain_ram()?;
            let names = view.as_slice::<String>()?;
            tensor1(&winners.iter().map(|&w| names[w].clone()).collect::<Vec<_>>())
        } else {
            let view = f.labels.try_as_plain_ram()?;
            let ids = view.as_slice::<i64>()?;
            tensor1(&winners.iter().map(|&w| ids[w]).collect::<Vec<_>>())
        };
        let probs = tensor1(&probs).into_shape(&[rows, classes])?;
        Ok(tvec!(labels.into_tvalue(), probs.into_tvalue()))
    }
}

impl TypedOp for ForestClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            TypedFact::dt_shape(self.0.labels.datum_type(), [n.clone()]),
            f32::fact([n, self.0.labels.len().to_dim()])
        ))
    }

    as_op!();
}
