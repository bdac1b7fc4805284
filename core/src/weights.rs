//! Borrowed views of the weights: nothing here owns or copies model data.

use crate::config::Config;
use crate::quant::GgmlMatrix;

/// A row-major matrix of `rows × cols` weights, borrowed from the model bytes.
///
/// An enum over element types so that one forward pass serves every file format.
#[derive(Debug, Clone, Copy)]
pub enum Matrix<'a> {
    /// 32-bit floats, `data.len() == rows * cols`.
    F32 {
        /// The weights, row after row.
        data: &'a [f32],
        /// Values per row.
        cols: usize,
    },
    /// Q8_0 int8 values with per-group scales (llama2.c v2 files).
    Q8(Q8Matrix<'a>),
    /// A ggml block type from a GGUF file (F16, BF16, Q8_0, Q4_K, ...).
    Ggml(GgmlMatrix<'a>),
}

/// A Q8_0 matrix: `values[i] * scale[i / group]`, with `group` dividing `cols` so that
/// groups never straddle rows. Scales are little-endian f32 bytes, which need no alignment
/// (in v2 files they follow an arbitrary number of int8 values).
#[derive(Debug, Clone, Copy)]
pub struct Q8Matrix<'a> {
    /// `rows × cols` int8 values, row after row.
    pub values: &'a [i8],
    /// One little-endian f32 scale (4 bytes) per `group` consecutive values.
    pub scales: &'a [u8],
    /// Values per scale.
    pub group: usize,
    /// Values per row.
    pub cols: usize,
}

impl<'a> Q8Matrix<'a> {
    /// The sub-matrix of rows `first..first + count`. Callers pass in-range rows.
    pub(crate) fn rows_slice(&self, first: usize, count: usize) -> Q8Matrix<'a> {
        let groups_per_row = self.cols / self.group;
        Q8Matrix {
            values: &self.values[first * self.cols..(first + count) * self.cols],
            scales: &self.scales[4 * first * groups_per_row..4 * (first + count) * groups_per_row],
            ..*self
        }
    }
}

impl<'a> Matrix<'a> {
    /// Number of input values each row multiplies (the matrix's width).
    pub fn cols(&self) -> usize {
        match *self {
            Matrix::F32 { cols, .. }
            | Matrix::Q8(Q8Matrix { cols, .. })
            | Matrix::Ggml(GgmlMatrix { cols, .. }) => cols,
        }
    }

    /// Number of rows (outputs of a matrix-vector product).
    pub fn rows(&self) -> usize {
        match *self {
            Matrix::F32 { data, cols } => data.len().checked_div(cols).unwrap_or(0),
            Matrix::Q8(Q8Matrix { values, cols, .. }) => {
                values.len().checked_div(cols).unwrap_or(0)
            }
            Matrix::Ggml(m) => m.rows(),
        }
    }

    /// Bytes of model data the matrix occupies (read once per matrix-vector product).
    pub fn byte_len(&self) -> usize {
        match *self {
            Matrix::F32 { data, .. } => core::mem::size_of_val(data),
            Matrix::Q8(Q8Matrix { values, scales, .. }) => values.len() + scales.len(),
            Matrix::Ggml(m) => m.data.len(),
        }
    }

    /// The sub-matrix of rows `first..first + count`. Callers pass in-range rows.
    pub(crate) fn rows_slice(&self, first: usize, count: usize) -> Matrix<'a> {
        match *self {
            Matrix::F32 { data, cols } => Matrix::F32 {
                data: &data[first * cols..(first + count) * cols],
                cols,
            },
            Matrix::Q8(q8) => Matrix::Q8(q8.rows_slice(first, count)),
            Matrix::Ggml(m) => Matrix::Ggml(m.rows_slice(first, count)),
        }
    }

    /// Writes row `row` as f32 into `out` (the token embedding lookup, and `convert`),
    /// dequantizing a quantized row on the fly so no table-sized buffer is needed. `row` must
    /// be below [`Matrix::rows`] and `out` hold [`Matrix::cols`] values.
    pub fn copy_row(&self, row: usize, out: &mut [f32]) {
        match *self {
            Matrix::F32 { data, cols } => out.copy_from_slice(&data[row * cols..(row + 1) * cols]),
            Matrix::Q8(q8) => {
                let Q8Matrix {
                    values,
                    scales,
                    group,
                    ..
                } = q8.rows_slice(row, 1);
                let groups = values.chunks_exact(group).zip(scales.chunks_exact(4));
                for (out, (q, scale)) in out.chunks_exact_mut(group).zip(groups) {
                    let scale = le_f32(scale);
                    for (o, &v) in out.iter_mut().zip(q) {
                        *o = f32::from(v) * scale;
                    }
                }
            }
            Matrix::Ggml(m) => m.dequantize_row(row, out),
        }
    }
}

/// Reads a little-endian f32 from 4 bytes.
pub(crate) fn le_f32(bytes: &[u8]) -> f32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    f32::from_le_bytes(word)
}

/// One tensor per layer, stored back to back.
#[derive(Debug, Clone, Copy)]
pub enum Stack<'a> {
    /// `layers × rows × cols` floats.
    F32 {
        /// Every layer's weights, layer after layer.
        all: &'a [f32],
        /// Rows of one layer's matrix.
        rows: usize,
        /// Values per row.
        cols: usize,
    },
    /// Per layer: `rows × cols` int8 values, then that layer's `rows × cols / group` scales.
    Q8 {
        /// Every layer's values and scales, layer after layer.
        all: &'a [u8],
        /// Rows of one layer's matrix.
        rows: usize,
        /// Values per row.
        cols: usize,
        /// Values per scale.
        group: usize,
    },
}

impl<'a> Stack<'a> {
    /// The matrix of layer `l`.
    pub fn layer(&self, l: usize) -> Matrix<'a> {
        match *self {
            Stack::F32 { all, rows, cols } => Matrix::F32 {
                data: &all[l * rows * cols..(l + 1) * rows * cols],
                cols,
            },
            Stack::Q8 {
                all,
                rows,
                cols,
                group,
            } => {
                let n = rows * cols;
                let layer_bytes = n + 4 * (n / group);
                q8_matrix(&all[l * layer_bytes..(l + 1) * layer_bytes], n, group, cols)
            }
        }
    }
}

/// A Q8 matrix from the bytes of `n` int8 values followed by their scales.
pub(crate) fn q8_matrix(bytes: &[u8], n: usize, group: usize, cols: usize) -> Matrix<'_> {
    let (values, scales) = bytes.split_at(n);
    Matrix::Q8(Q8Matrix {
        values: bytemuck::cast_slice(values),
        scales,
        group,
        cols,
    })
}

/// All weights of a model, as views into the model bytes.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    /// `[vocab_size][dim]`
    pub token_embedding: Matrix<'a>,
    /// Final RMSNorm gains, `[dim]`.
    pub rms_final: &'a [f32],
    /// Output classifier, `[vocab_size][dim]` (the token embedding when shared).
    pub classifier: Matrix<'a>,
    /// The transformer layers.
    pub layers: Layers<'a>,
}

/// Where the per-layer weights are: two layouts, one view per layer for the forward pass.
// One per model, never in a collection: the size difference costs nothing, and there is no
// heap to box the stacks on.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum Layers<'a> {
    /// llama2.c files: each kind of tensor for all layers back to back.
    Stacked(Stacks<'a>),
    /// GGUF files: one table entry per layer (in the caller's memory), since each layer's
    /// tensors may be anywhere in the file and of any type.
    Table(&'a [LayerWeights<'a>]),
}

/// The per-layer tensors of a llama2.c file, each kind stacked over the layers.
#[derive(Debug, Clone, Copy)]
pub struct Stacks<'a> {
    /// RMSNorm gains before attention, `[n_layers][dim]`.
    pub rms_att: &'a [f32],
    /// RMSNorm gains before the feed-forward layer, `[n_layers][dim]`.
    pub rms_ffn: &'a [f32],
    /// Query projection, `[dim][dim]` per layer.
    pub wq: Stack<'a>,
    /// Key projection, `[kv_dim][dim]` per layer.
    pub wk: Stack<'a>,
    /// Value projection, `[kv_dim][dim]` per layer.
    pub wv: Stack<'a>,
    /// Attention output projection, `[dim][dim]` per layer.
    pub wo: Stack<'a>,
    /// Feed-forward gate, `[hidden_dim][dim]` per layer.
    pub w1: Stack<'a>,
    /// Feed-forward down projection, `[dim][hidden_dim]` per layer.
    pub w2: Stack<'a>,
    /// Feed-forward up projection, `[hidden_dim][dim]` per layer.
    pub w3: Stack<'a>,
}

/// The weights of one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerWeights<'a> {
    /// RMSNorm gains before attention, `[dim]`.
    pub rms_att: &'a [f32],
    /// Query projection, `[dim][dim]`.
    pub wq: Matrix<'a>,
    /// Key projection, `[kv_dim][dim]`.
    pub wk: Matrix<'a>,
    /// Value projection, `[kv_dim][dim]`.
    pub wv: Matrix<'a>,
    /// Attention output projection, `[dim][dim]`.
    pub wo: Matrix<'a>,
    /// RMSNorm gains before the feed-forward layer, `[dim]`.
    pub rms_ffn: &'a [f32],
    /// Feed-forward gate, `[hidden_dim][dim]`.
    pub w1: Matrix<'a>,
    /// Feed-forward down projection, `[dim][hidden_dim]`.
    pub w2: Matrix<'a>,
    /// Feed-forward up projection, `[hidden_dim][dim]`.
    pub w3: Matrix<'a>,
}

impl<'a> LayerWeights<'a> {
    /// A placeholder entry (empty views), to fill a table before [`Model::parse`] writes it.
    ///
    /// [`Model::parse`]: crate::Model::parse
    pub const EMPTY: LayerWeights<'static> = {
        const NONE: Matrix<'static> = Matrix::F32 { data: &[], cols: 0 };
        LayerWeights {
            rms_att: &[],
            wq: NONE,
            wk: NONE,
            wv: NONE,
            wo: NONE,
            rms_ffn: &[],
            w1: NONE,
            w2: NONE,
            w3: NONE,
        }
    };

    /// The seven matrices with their llama2.c names (`wq, wk, wv, wo, w1, w2, w3`).
    pub fn named_matrices(&self) -> [(&'static str, Matrix<'a>); 7] {
        [
            ("wq", self.wq),
            ("wk", self.wk),
            ("wv", self.wv),
            ("wo", self.wo),
            ("w1", self.w1),
            ("w2", self.w2),
            ("w3", self.w3),
        ]
    }
}

impl<'a> Stacks<'a> {
    /// The seven matrix stacks with their llama2.c names, in file order
    /// (`wq, wk, wv, wo, w1, w2, w3`).
    pub fn named(&self) -> [(&'static str, Stack<'a>); 7] {
        [
            ("wq", self.wq),
            ("wk", self.wk),
            ("wv", self.wv),
            ("wo", self.wo),
            ("w1", self.w1),
            ("w2", self.w2),
            ("w3", self.w3),
        ]
    }
}

impl<'a> Weights<'a> {
    /// The stacked layers of a llama2.c file (`None` for a GGUF file's table).
    pub fn stacks(&self) -> Option<Stacks<'a>> {
        match self.layers {
            Layers::Stacked(s) => Some(s),
            Layers::Table(_) => None,
        }
    }

    /// The weights of layer `l` (below `config.n_layers`, the model's own config).
    pub fn layer(&self, config: &Config, l: usize) -> LayerWeights<'a> {
        match self.layers {
            Layers::Stacked(s) => {
                let norm = |table: &'a [f32]| &table[l * config.dim..(l + 1) * config.dim];
                LayerWeights {
                    rms_att: norm(s.rms_att),
                    wq: s.wq.layer(l),
                    wk: s.wk.layer(l),
                    wv: s.wv.layer(l),
                    wo: s.wo.layer(l),
                    rms_ffn: norm(s.rms_ffn),
                    w1: s.w1.layer(l),
                    w2: s.w2.layer(l),
                    w3: s.w3.layer(l),
                }
            }
            Layers::Table(table) => table[l],
        }
    }

    /// Bytes of weights one forward pass reads: every layer's matrices and norms, the final
    /// norm and the classifier (the single embedding row is negligible and not counted).
    pub fn bytes_per_token(&self, config: &Config) -> usize {
        let layers: usize = (0..config.n_layers)
            .map(|l| {
                let layer = self.layer(config, l);
                let matrices: usize = layer
                    .named_matrices()
                    .iter()
                    .map(|(_, m)| m.byte_len())
                    .sum();
                matrices
                    + core::mem::size_of_val(layer.rms_att)
                    + core::mem::size_of_val(layer.rms_ffn)
            })
            .sum();
        layers + core::mem::size_of_val(self.rms_final) + self.classifier.byte_len()
    }
}
