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
    /// RMSNorm gains before attention, `[n_layers][dim]`.
    pub rms_att: &'a [f32],
    /// RMSNorm gains before the feed-forward layer, `[n_layers][dim]`.
    pub rms_ffn: &'a [f32],
    /// Final RMSNorm gains, `[dim]`.
    pub rms_final: &'a [f32],
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
    /// Output classifier, `[vocab_size][dim]` (the token embedding when shared).
    pub classifier: Matrix<'a>,
}

impl<'a> Weights<'a> {
    /// The seven per-layer matrix stacks with their llama2.c names, in file order
    /// (`wq, wk, wv, wo, w1, w2, w3`).
    pub fn named_stacks(&self) -> [(&'static str, Stack<'a>); 7] {
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

    /// Bytes of weights one forward pass reads: every layer's matrices and norms, the final
    /// norm and the classifier (the single embedding row is negligible and not counted).
    pub fn bytes_per_token(&self, config: &Config) -> usize {
        let stacks = [
            self.wq, self.wk, self.wv, self.wo, self.w1, self.w2, self.w3,
        ];
        let matrices: usize = (0..config.n_layers)
            .flat_map(|l| stacks.iter().map(move |s| s.layer(l).byte_len()))
            .sum();
        let norms = core::mem::size_of_val(self.rms_att)
            + core::mem::size_of_val(self.rms_ffn)
            + core::mem::size_of_val(self.rms_final);
        matrices + norms + self.classifier.byte_len()
    }

    /// The RMSNorm gains of layer `l` in a `[n_layers][dim]` table.
    pub(crate) fn norm(table: &'a [f32], config: &Config, l: usize) -> &'a [f32] {
        &table[l * config.dim..(l + 1) * config.dim]
    }
}
