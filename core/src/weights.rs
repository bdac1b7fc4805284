//! Borrowed views of the weights: nothing here owns or copies model data.

use crate::config::Config;

/// A row-major matrix of `rows × cols` weights, borrowed from the model bytes.
///
/// An enum over element types so that one forward pass serves every file format.
#[derive(Debug, Clone, Copy)]
pub enum Matrix<'a> {
    /// 32-bit floats, `data.len() == rows * cols`.
    F32 { data: &'a [f32], cols: usize },
}

impl<'a> Matrix<'a> {
    /// Number of input values each row multiplies (the matrix's width).
    pub fn cols(&self) -> usize {
        match self {
            Matrix::F32 { cols, .. } => *cols,
        }
    }

    /// Number of rows (outputs of a matrix-vector product).
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32 { data, cols } => data.len() / cols,
        }
    }

    /// The sub-matrix of rows `first..first + count`. Callers pass in-range rows.
    pub(crate) fn rows_slice(&self, first: usize, count: usize) -> Matrix<'a> {
        match *self {
            Matrix::F32 { data, cols } => Matrix::F32 {
                data: &data[first * cols..(first + count) * cols],
                cols,
            },
        }
    }

    /// Writes row `row` as f32 into `out` (the token embedding lookup).
    pub(crate) fn copy_row(&self, row: usize, out: &mut [f32]) {
        match *self {
            Matrix::F32 { data, cols } => out.copy_from_slice(&data[row * cols..(row + 1) * cols]),
        }
    }
}

/// One tensor per layer, stored back to back: `layers × rows × cols`.
#[derive(Debug, Clone, Copy)]
pub struct Stack<'a> {
    all: Matrix<'a>,
    rows: usize,
}

impl<'a> Stack<'a> {
    pub(crate) fn new(all: Matrix<'a>, rows: usize) -> Self {
        Stack { all, rows }
    }

    /// The matrix of layer `l`.
    pub fn layer(&self, l: usize) -> Matrix<'a> {
        self.all.rows_slice(l * self.rows, self.rows)
    }
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
    /// The RMSNorm gains of layer `l` in a `[n_layers][dim]` table.
    pub(crate) fn norm(table: &'a [f32], config: &Config, l: usize) -> &'a [f32] {
        &table[l * config.dim..(l + 1) * config.dim]
    }
}
