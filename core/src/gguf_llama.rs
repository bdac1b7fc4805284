//! The llama architecture in a GGUF file: hyperparameters from the `llama.*` metadata and
//! the weights from the tensors named as llama.cpp names them, viewed in place.
//!
//! Each layer's tensors can be anywhere in the file and of any supported type, so their
//! views go into a caller-provided table of [`LayerWeights`], one entry per layer
//! ([`layer_count`] says how many). One walk over the tensor infos files every tensor into
//! its slot and refuses any the architecture does not have; then every slot is checked
//! for presence, shape and type, so the forward pass can trust the views.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::checkpoint::{Format, Model};
use crate::config::{Config, Numerics};
use crate::error::{Buffer, Error, Result};
use crate::gguf::{GgmlType, Gguf, GgufName, TensorInfo, Value, ValueType};
use crate::quant::{self, GgmlMatrix};
use crate::weights::{LayerWeights, Layers, Matrix, Weights};

/// The one architecture this engine runs.
const ARCHITECTURE: &str = "llama";

/// The per-layer tensors, by their name after `blk.N.`, in the order of [`Slot`].
const LAYER_TENSORS: [&str; 9] = [
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

/// Metadata keys whose presence (with a value other than "none" or 0) asks for a feature
/// this engine does not implement.
const UNSUPPORTED_KEYS: [&str; 3] = [
    "llama.rope.scaling.type",
    "llama.expert_count",
    "llama.expert_used_count",
];

/// The number of layers (`llama.block_count`) of a parsed GGUF file: the length of the
/// table [`parse`] needs.
pub(crate) fn layer_count(file: &Gguf<'_>) -> Result<usize> {
    check_architecture(file)?;
    size(file, "llama.block_count")
}

/// A [`Model`] over a parsed GGUF file, its per-layer views written into `table` (at
/// least [`layer_count`] entries; the rest is left alone).
pub(crate) fn parse<'a>(file: &Gguf<'a>, table: &'a mut [LayerWeights<'a>]) -> Result<Model<'a>> {
    let (mut config, numerics) = hyperparameters(file)?;
    let needed = config.n_layers;
    let actual = table.len();
    let table = table.get_mut(..needed).ok_or(Error::BufferTooSmall {
        buffer: Buffer::LayerTable,
        needed,
        actual,
    })?;
    table.fill(LayerWeights::EMPTY);

    let mut globals = Globals::default();
    for tensor in file.tensors() {
        file_tensor(tensor, &config, table, &mut globals)?;
    }
    let Globals {
        token_embd,
        output_norm,
        output,
    } = globals;

    let (dim, vocab) = (config.dim, config.vocab_size);
    let token_embd = token_embd.ok_or(missing("token_embd.weight"))?;
    let token_embedding = matrix(token_embd, [dim, vocab])?;
    let rms_final = norm(output_norm.ok_or(missing("output_norm.weight"))?, dim)?;
    config.shared_classifier = output.is_none();
    let classifier = match output {
        Some(output) => matrix(output, [dim, vocab])?,
        None => token_embedding,
    };
    config.check()?;
    for (l, layer) in table.iter().enumerate() {
        check_layer(layer, l)?;
    }
    let table: &'a [LayerWeights<'a>] = table;
    Ok(Model {
        config,
        numerics,
        format: Format::Gguf {
            version: file.version(),
        },
        weights: Weights {
            token_embedding,
            rms_final,
            classifier,
            layers: Layers::Table(table),
        },
    })
}

/// The model-wide tensors, as found.
#[derive(Default)]
struct Globals<'a> {
    token_embd: Option<TensorInfo<'a>>,
    output_norm: Option<TensorInfo<'a>>,
    output: Option<TensorInfo<'a>>,
}

fn missing(name: &str) -> Error {
    Error::GgufMissingTensor {
        tensor: GgufName::new(name),
    }
}

/// Puts one tensor where it belongs, viewed with the shape the hyperparameters give it.
fn file_tensor<'a>(
    tensor: TensorInfo<'a>,
    c: &Config,
    table: &mut [LayerWeights<'a>],
    globals: &mut Globals<'a>,
) -> Result<()> {
    let unknown = || Error::GgufUnknownTensor {
        tensor: GgufName::new(tensor.name),
    };
    let global = match tensor.name {
        "token_embd.weight" => Some(&mut globals.token_embd),
        "output_norm.weight" => Some(&mut globals.output_norm),
        "output.weight" => Some(&mut globals.output),
        _ => None,
    };
    if let Some(slot) = global {
        *slot = Some(tensor);
        return Ok(());
    }
    let (l, kind) = layer_tensor(tensor.name).ok_or_else(unknown)?;
    let layer = table.get_mut(l).ok_or_else(unknown)?;
    let (dim, kv_dim, hidden) = (c.dim, c.kv_dim(), c.hidden_dim);
    match kind {
        0 => layer.rms_att = norm(tensor, dim)?,
        1 => layer.wq = matrix(tensor, [dim, dim])?,
        2 => layer.wk = matrix(tensor, [dim, kv_dim])?,
        3 => layer.wv = matrix(tensor, [dim, kv_dim])?,
        4 => layer.wo = matrix(tensor, [dim, dim])?,
        5 => layer.rms_ffn = norm(tensor, dim)?,
        6 => layer.w1 = matrix(tensor, [dim, hidden])?,
        7 => layer.w3 = matrix(tensor, [dim, hidden])?,
        _ => layer.w2 = matrix(tensor, [hidden, dim])?,
    }
    Ok(())
}

/// `blk.N.NAME` as `(N, index of NAME in LAYER_TENSORS)`.
fn layer_tensor(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("blk.")?;
    let (layer, tensor) = rest.split_once('.')?;
    // Digits only, no sign or leading zeros, so one tensor has one spelling.
    let canonical = !layer.is_empty()
        && layer.bytes().all(|b| b.is_ascii_digit())
        && (layer == "0" || !layer.starts_with('0'));
    let l = if canonical {
        layer.parse().ok()?
    } else {
        return None;
    };
    let kind = LAYER_TENSORS.iter().position(|&t| t == tensor)?;
    Some((l, kind))
}

/// Checks that every slot of layer `l` was filled (an unfilled slot is still
/// [`LayerWeights::EMPTY`], whose views are empty, which no real tensor is).
fn check_layer(layer: &LayerWeights<'_>, l: usize) -> Result<()> {
    let present = [
        !layer.rms_att.is_empty(),
        layer.wq.cols() > 0,
        layer.wk.cols() > 0,
        layer.wv.cols() > 0,
        layer.wo.cols() > 0,
        !layer.rms_ffn.is_empty(),
        layer.w1.cols() > 0,
        layer.w3.cols() > 0,
        layer.w2.cols() > 0,
    ];
    for (&present, tensor) in present.iter().zip(LAYER_TENSORS) {
        if !present {
            let mut name: heapless::String<64> = heapless::String::new();
            // `blk.` + at most 20 digits + `.` + the longest tensor name fits 64 bytes.
            let _ = core::fmt::write(&mut name, format_args!("blk.{l}.{tensor}"));
            return Err(missing(&name));
        }
    }
    Ok(())
}

/// The tensor's dimensions, padded with 1s.
fn dims4(tensor: &TensorInfo<'_>) -> [usize; 4] {
    let mut dims = [1; 4];
    for (d, &v) in dims.iter_mut().zip(tensor.dims()) {
        *d = v;
    }
    dims
}

/// Checks a tensor's shape against `[cols, rows]` (ggml order; `rows == 1` for a vector).
fn check_shape(tensor: &TensorInfo<'_>, expected: [usize; 2]) -> Result<()> {
    let found = dims4(tensor);
    if found != [expected[0], expected[1], 1, 1] {
        return Err(Error::GgufShapeMismatch {
            tensor: GgufName::new(tensor.name),
            expected,
            found,
        });
    }
    Ok(())
}

/// An F32 vector of `len` values (the RMSNorm gains).
fn norm<'a>(tensor: TensorInfo<'a>, len: usize) -> Result<&'a [f32]> {
    check_shape(&tensor, [len, 1])?;
    if tensor.ggml_type != GgmlType::F32 {
        return Err(Error::GgufWeightType {
            tensor: GgufName::new(tensor.name),
            ggml_type: tensor.ggml_type,
        });
    }
    bytemuck::try_cast_slice(tensor.data).map_err(|_| Error::Misaligned)
}

/// A `rows × cols` matrix view (`shape = [cols, rows]`) of a tensor of any weight type.
fn matrix<'a>(tensor: TensorInfo<'a>, shape: [usize; 2]) -> Result<Matrix<'a>> {
    check_shape(&tensor, shape)?;
    let [cols, _] = shape;
    match tensor.ggml_type {
        GgmlType::F32 => Ok(Matrix::F32 {
            data: bytemuck::try_cast_slice(tensor.data).map_err(|_| Error::Misaligned)?,
            cols,
        }),
        ty if quant::is_weight_type(ty) => Ok(Matrix::Ggml(GgmlMatrix {
            ty,
            data: tensor.data,
            cols,
        })),
        ggml_type => Err(Error::GgufWeightType {
            tensor: GgufName::new(tensor.name),
            ggml_type,
        }),
    }
}

fn check_architecture(file: &Gguf<'_>) -> Result<()> {
    let key = "general.architecture";
    let value = file.metadata(key).ok_or(Error::GgufMissingKey { key })?;
    let arch = value
        .as_str()
        .ok_or(wrong_type(key, ValueType::String, &value))?;
    if arch != ARCHITECTURE {
        return Err(Error::GgufArchitecture {
            found: GgufName::new(arch),
        });
    }
    Ok(())
}

/// The shape (all but the classifier flag, which depends on the tensors) and the numerics.
fn hyperparameters(file: &Gguf<'_>) -> Result<(Config, Numerics)> {
    check_architecture(file)?;
    for key in UNSUPPORTED_KEYS {
        if let Some(value) = file.metadata(key) {
            let off = value.as_str() == Some("none") || value.as_u64() == Some(0);
            if !off {
                return Err(Error::GgufUnsupportedFeature { key });
            }
        }
    }
    let n_heads = size(file, "llama.attention.head_count")?;
    let n_kv_heads = match file.metadata("llama.attention.head_count_kv") {
        Some(_) => size(file, "llama.attention.head_count_kv")?,
        None => n_heads,
    };
    let tokens_key = "tokenizer.ggml.tokens";
    let tokens = file
        .metadata(tokens_key)
        .ok_or(Error::GgufMissingKey { key: tokens_key })?;
    let vocab_size = tokens
        .as_array()
        .ok_or(wrong_type(tokens_key, ValueType::Array, &tokens))?
        .len();
    if vocab_size == 0 {
        return Err(Error::GgufKeyOutOfRange {
            key: tokens_key,
            value: 0,
        });
    }
    let config = Config {
        dim: size(file, "llama.embedding_length")?,
        hidden_dim: size(file, "llama.feed_forward_length")?,
        n_layers: size(file, "llama.block_count")?,
        n_heads,
        n_kv_heads,
        vocab_size,
        seq_len: size(file, "llama.context_length")?,
        shared_classifier: false,
    };
    config.check()?;
    let rope_key = "llama.rope.dimension_count";
    if file.metadata(rope_key).is_some() {
        let rope_dims = size(file, rope_key)?;
        if rope_dims != config.head_size() {
            return Err(Error::GgufPartialRotary {
                rope_dims,
                head_size: config.head_size(),
            });
        }
    }
    let eps_key = "llama.attention.layer_norm_rms_epsilon";
    let rms_eps = float(file, eps_key)?.ok_or(Error::GgufMissingKey { key: eps_key })?;
    let rope_base = float(file, "llama.rope.freq_base")?.unwrap_or(Numerics::LLAMA2C.rope_base);
    Ok((config, Numerics { rms_eps, rope_base }))
}

fn wrong_type(key: &'static str, expected: ValueType, found: &Value<'_>) -> Error {
    Error::GgufWrongType {
        key,
        expected,
        found: found.value_type(),
    }
}

/// A required positive integer that fits `usize`.
fn size(file: &Gguf<'_>, key: &'static str) -> Result<usize> {
    let value = file.metadata(key).ok_or(Error::GgufMissingKey { key })?;
    let raw = value
        .as_u64()
        .ok_or(wrong_type(key, ValueType::U32, &value))?;
    usize::try_from(raw)
        .ok()
        .filter(|&v| v > 0)
        .ok_or(Error::GgufKeyOutOfRange { key, value: raw })
}

/// An optional `f32` (an `f64` is accepted where it is exactly an `f32`).
fn float(file: &Gguf<'_>, key: &'static str) -> Result<Option<f32>> {
    let Some(value) = file.metadata(key) else {
        return Ok(None);
    };
    let v = value
        .as_f32()
        .or_else(|| {
            let v = value.as_f64()?;
            let narrow = v as f32;
            (f64::from(narrow) == v).then_some(narrow)
        })
        .ok_or(wrong_type(key, ValueType::F32, &value))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::GgufFloatOutOfRange { key, value: v });
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    //! Tiny llama GGUF files built byte by byte (with the container tests' [`Builder`]),
    //! checked against the same weights in a llama2.c v1 file, then broken one way at a
    //! time, each with the exact error it must give.

    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, vec};

    use super::*;
    use crate::gguf::tests::{
        array, string, Builder, ARRAY, F32, F64, I32, STRING, T_F32, T_Q8_0, U16, U32, U64,
    };
    use crate::header::Header;
    use crate::kernels::Kernels;
    use crate::parallel::Serial;
    use crate::state::State;

    // ggml type ids the tests use besides F32 and Q8_0.
    const T_F16: u32 = 1;
    const T_I32: u32 = 26;

    /// dim 8, hidden 12, 2 layers, 4 heads of size 2, 2 kv heads, 6 tokens, context 4.
    const SHAPE: Config = Config {
        dim: 8,
        hidden_dim: 12,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 6,
        seq_len: 4,
        shared_classifier: true,
    };

    /// One tensor of a test file.
    #[derive(Clone)]
    struct Tensor {
        name: String,
        dims: Vec<u64>,
        ty: u32,
        bytes: Vec<u8>,
    }

    /// A GGUF file as its metadata entries and tensors, for a test to change before
    /// [`File::bytes`].
    #[derive(Clone)]
    struct File {
        meta: Vec<(String, u32, Vec<u8>)>,
        tensors: Vec<Tensor>,
    }

    impl File {
        /// Sets `key` (replacing its entry in place, else adding one).
        fn set(&mut self, key: &str, type_id: u32, value: &[u8]) -> &mut File {
            let entry = (key.to_string(), type_id, value.to_vec());
            match self.meta.iter_mut().find(|(k, _, _)| k == key) {
                Some(slot) => *slot = entry,
                None => self.meta.push(entry),
            }
            self
        }

        fn set_u32(&mut self, key: &str, value: u32) -> &mut File {
            self.set(key, U32, &value.to_le_bytes())
        }

        fn set_f32(&mut self, key: &str, value: f32) -> &mut File {
            self.set(key, F32, &value.to_le_bytes())
        }

        fn remove(&mut self, key: &str) -> &mut File {
            let before = self.meta.len();
            self.meta.retain(|(k, _, _)| k != key);
            assert_eq!(self.meta.len(), before - 1, "{key} is in the file");
            self
        }

        fn tensor(&mut self, name: &str) -> &mut Tensor {
            self.tensors
                .iter_mut()
                .find(|t| t.name == name)
                .expect("the tensor is in the file")
        }

        fn remove_tensor(&mut self, name: &str) -> &mut File {
            let before = self.tensors.len();
            self.tensors.retain(|t| t.name != name);
            assert_eq!(self.tensors.len(), before - 1, "{name} is in the file");
            self
        }

        /// Adds an F32 tensor of `dims`, all zeros.
        fn add_tensor(&mut self, name: &str, dims: &[u64]) -> &mut File {
            let n: u64 = dims.iter().product();
            self.tensors.push(Tensor {
                name: name.to_string(),
                dims: dims.to_vec(),
                ty: T_F32,
                bytes: vec![0; 4 * n as usize],
            });
            self
        }

        fn builder(&self) -> Builder {
            let mut b = Builder::new();
            for (key, type_id, value) in &self.meta {
                b = b.kv(key.as_bytes(), *type_id, value);
            }
            b
        }

        fn bytes(&self) -> Vec<u8> {
            let mut b = self.builder();
            for t in &self.tensors {
                b = b.tensor(&t.name, &t.dims, t.ty, &t.bytes);
            }
            b.build()
        }
    }

    /// The weights of a model of shape `c` as `(GGUF name, [cols, rows], values)`, in
    /// llama.cpp's usual order; `output.weight` unless `tied`. Pseudo-random values.
    fn weights(c: &Config, tied: bool) -> Vec<(String, [usize; 2], Vec<f32>)> {
        let (d, h, v, kv) = (c.dim, c.hidden_dim, c.vocab_size, c.kv_dim());
        let mut names: Vec<(String, [usize; 2])> = vec![
            ("token_embd.weight".into(), [d, v]),
            ("output_norm.weight".into(), [d, 1]),
        ];
        if !tied {
            names.push(("output.weight".into(), [d, v]));
        }
        for l in 0..c.n_layers {
            for (name, shape) in [
                ("attn_norm", [d, 1]),
                ("attn_q", [d, d]),
                ("attn_k", [d, kv]),
                ("attn_v", [d, kv]),
                ("attn_output", [d, d]),
                ("ffn_norm", [d, 1]),
                ("ffn_gate", [d, h]),
                ("ffn_up", [d, h]),
                ("ffn_down", [h, d]),
            ] {
                names.push((format!("blk.{l}.{name}.weight"), shape));
            }
        }
        let mut seed = 0x2545_f491u32;
        names
            .into_iter()
            .map(|(name, [cols, rows])| {
                let values = (0..cols * rows)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (seed >> 8) as f32 / 16_777_216.0 - 0.5
                    })
                    .collect();
                (name, [cols, rows], values)
            })
            .collect()
    }

    /// The little-endian bytes of `values` (one copy: Miri runs per-byte loops slowly; the
    /// engine views weights in place, so it runs on little-endian targets only).
    fn le_bytes(values: &[f32]) -> Vec<u8> {
        bytemuck::cast_slice::<f32, u8>(values).to_vec()
    }

    /// A valid llama GGUF file of shape `c` with every tensor in F32 and integer keys as
    /// u32; no `output.weight` if `tied`.
    fn gguf(c: &Config, tied: bool) -> File {
        let tokens: Vec<u8> = (0..c.vocab_size)
            .flat_map(|i| string(format!("▁t{i}").as_bytes()))
            .collect();
        let mut file = File {
            meta: Vec::new(),
            tensors: Vec::new(),
        };
        file.set("general.architecture", STRING, &string(b"llama"))
            .set_u32("llama.context_length", c.seq_len as u32)
            .set_u32("llama.embedding_length", c.dim as u32)
            .set_u32("llama.feed_forward_length", c.hidden_dim as u32)
            .set_u32("llama.block_count", c.n_layers as u32)
            .set_u32("llama.attention.head_count", c.n_heads as u32)
            .set_u32("llama.attention.head_count_kv", c.n_kv_heads as u32)
            .set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
            .set_f32("llama.rope.freq_base", 10000.0)
            .set_u32("llama.rope.dimension_count", c.head_size() as u32)
            .set("tokenizer.ggml.model", STRING, &string(b"llama"))
            .set(
                "tokenizer.ggml.tokens",
                ARRAY,
                &array(STRING, c.vocab_size as u64, &tokens),
            );
        for (name, [cols, rows], values) in weights(c, tied) {
            let dims = if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            };
            file.tensors.push(Tensor {
                name,
                dims,
                ty: T_F32,
                bytes: le_bytes(&values),
            });
        }
        file
    }

    /// [`gguf`] of [`SHAPE`], made once (weights are slow to generate under Miri).
    fn base(tied: bool) -> File {
        static FILES: std::sync::OnceLock<[File; 2]> = std::sync::OnceLock::new();
        let [tied_file, untied_file] =
            FILES.get_or_init(|| [gguf(&SHAPE, true), gguf(&SHAPE, false)]);
        if tied { tied_file } else { untied_file }.clone()
    }

    /// The same weights as [`gguf`] in a llama2.c v1 file.
    fn v1(c: &Config, tied: bool) -> Vec<u8> {
        let config = Config {
            shared_classifier: tied,
            ..*c
        };
        let weights = weights(c, tied);
        let find = |name: &str| {
            let (_, _, values) = weights.iter().find(|(n, _, _)| n == name).unwrap();
            values.as_slice()
        };
        let mut out = Header::new(&config, Format::V1)
            .unwrap()
            .as_bytes()
            .to_vec();
        let layers = |out: &mut Vec<u8>, tensor: &str| {
            for l in 0..c.n_layers {
                out.extend(le_bytes(find(&format!("blk.{l}.{tensor}.weight"))));
            }
        };
        layers(&mut out, "attn_norm");
        layers(&mut out, "ffn_norm");
        out.extend(le_bytes(find("output_norm.weight")));
        out.extend(le_bytes(find("token_embd.weight")));
        // llama2.c's w1, w2, w3 are the gate, down and up projections.
        for tensor in [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_down",
            "ffn_up",
        ] {
            layers(&mut out, tensor);
        }
        if !tied {
            out.extend(le_bytes(find("output.weight")));
        }
        out
    }

    /// `bytes` in 4-byte-aligned storage, as a memory map gives them.
    fn aligned(bytes: &[u8]) -> Vec<u32> {
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        words
    }

    /// Parses `bytes` (aligned) with a table of `table_len` entries and hands the result
    /// to `f`.
    fn with_model<R>(bytes: &[u8], table_len: usize, f: impl FnOnce(Result<Model<'_>>) -> R) -> R {
        let words = aligned(bytes);
        let view = &bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()];
        let mut table = vec![LayerWeights::EMPTY; table_len];
        f(Model::parse(view, &mut table))
    }

    /// The config and numerics of a file that must parse.
    fn parsed(file: &File) -> (Config, Numerics) {
        with_model(&file.bytes(), 4, |m| {
            let m = m.expect("the file parses");
            (m.config, m.numerics)
        })
    }

    /// The error a file must give.
    fn error(file: &File) -> Error {
        with_model(&file.bytes(), 4, |m| m.map(|_| ()).unwrap_err())
    }

    /// The logits after each of `tokens`, run one by one from position 0 with the scalar
    /// kernels.
    fn logits(bytes: &[u8], table_len: usize, tokens: &[u32]) -> Vec<Vec<f32>> {
        with_model(bytes, table_len, |model| {
            let model = model.expect("the model parses");
            let c = model.config;
            let mut buffer = vec![0f32; State::len_for(&c, tokens.len()).unwrap()];
            let mut state = State::new(&c, tokens.len(), &mut buffer).unwrap();
            state.set_kernels(Kernels::scalar());
            let mut all = Vec::new();
            for (pos, &token) in tokens.iter().enumerate() {
                let logits = model.forward(&mut state, token, pos, &Serial).unwrap();
                all.push(logits.to_vec());
            }
            all
        })
    }

    fn bits(logits: &[Vec<f32>]) -> Vec<Vec<u32>> {
        logits
            .iter()
            .map(|l| l.iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    /// The cases of a test: all of them natively, every third under Miri, which takes
    /// seconds per file.
    fn cases<I: IntoIterator>(items: I) -> impl Iterator<Item = I::Item> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !cfg!(miri) || i % 3 == 0)
            .map(|(_, item)| item)
    }

    /// `items` in a fixed pseudo-random order (Fisher-Yates with a fixed seed).
    fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
        let mut seed = 99u32;
        for i in (1..items.len()).rev() {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            items.swap(i, (seed >> 8) as usize % (i + 1));
        }
        items
    }

    #[test]
    fn runs_bit_for_bit_like_the_same_weights_in_a_llama2c_file() {
        let tokens = [1, 5, 0, 3];
        for tied in [true, false] {
            let reference = v1(&SHAPE, tied);
            let expected = logits(&reference, 0, &tokens);
            assert!(expected.iter().flatten().all(|v| v.is_finite()));
            let in_order = gguf(&SHAPE, tied);
            let mut reordered = in_order.clone();
            reordered.tensors = shuffled(reordered.tensors);
            reordered.meta = shuffled(reordered.meta);
            assert_ne!(
                reordered.tensors[0].name, in_order.tensors[0].name,
                "the shuffle moves tensors"
            );
            for file in [&in_order, &reordered] {
                let bytes = file.bytes();
                assert_eq!(Model::layer_table_len(&bytes), Ok(SHAPE.n_layers));
                with_model(&bytes, SHAPE.n_layers, |model| {
                    let model = model.unwrap();
                    let config = Config {
                        shared_classifier: tied,
                        ..SHAPE
                    };
                    assert_eq!(model.config, config);
                    assert_eq!(model.numerics, Numerics::LLAMA2C);
                    assert_eq!(model.format, Format::Gguf { version: 3 });
                    assert!(model.weights.stacks().is_none());
                });
                let got = logits(&bytes, SHAPE.n_layers, &tokens);
                assert_eq!(bits(&got), bits(&expected), "tied {tied}");
            }
        }
        // Tied and untied weights differ: the comparison above sees the classifier.
        assert_ne!(
            bits(&logits(&v1(&SHAPE, true), 0, &tokens)),
            bits(&logits(&v1(&SHAPE, false), 0, &tokens))
        );
    }

    #[test]
    fn the_layer_table_must_hold_every_layer() {
        let bytes = base(false).bytes();
        assert_eq!(Model::layer_table_len(&bytes), Ok(2));
        for short in [0, 1] {
            let err = with_model(&bytes, short, |m| m.map(|_| ()).unwrap_err());
            assert_eq!(
                err,
                Error::BufferTooSmall {
                    buffer: Buffer::LayerTable,
                    needed: 2,
                    actual: short
                }
            );
        }
        // A longer table is fine; the model has its own layer count.
        let layers = with_model(&bytes, 9, |m| m.unwrap().config.n_layers);
        assert_eq!(layers, 2);
        // llama2.c files need no table.
        assert_eq!(Model::layer_table_len(&v1(&SHAPE, true)), Ok(0));
    }

    #[test]
    fn layer_table_len_checks_the_architecture_and_block_count() {
        let mut file = base(true);
        file.set_u32("llama.block_count", 7);
        assert_eq!(Model::layer_table_len(&file.bytes()), Ok(7));
        file.set_u32("llama.block_count", 0);
        assert_eq!(
            Model::layer_table_len(&file.bytes()),
            Err(Error::GgufKeyOutOfRange {
                key: "llama.block_count",
                value: 0
            })
        );
        file.remove("llama.block_count");
        assert_eq!(
            Model::layer_table_len(&file.bytes()),
            Err(Error::GgufMissingKey {
                key: "llama.block_count"
            })
        );
        file.set("general.architecture", STRING, &string(b"mamba"));
        assert_eq!(
            Model::layer_table_len(&file.bytes()),
            Err(Error::GgufArchitecture {
                found: GgufName::new("mamba")
            })
        );
        // A broken container is reported as such.
        let mut bytes = base(true).bytes();
        bytes.truncate(40);
        assert!(matches!(
            Model::layer_table_len(&bytes),
            Err(Error::GgufTruncated { .. })
        ));
    }

    #[test]
    fn integer_keys_of_any_integer_type() {
        let mut file = base(true);
        file.set("llama.embedding_length", U64, &8u64.to_le_bytes())
            .set("llama.block_count", I32, &2i32.to_le_bytes())
            .set("llama.attention.head_count", U16, &4u16.to_le_bytes())
            .set("llama.context_length", U64, &4u64.to_le_bytes())
            .set("llama.rope.dimension_count", I32, &2i32.to_le_bytes());
        assert_eq!(parsed(&file).0, SHAPE);

        file.set("llama.attention.head_count", I32, &(-4i32).to_le_bytes());
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key: "llama.attention.head_count",
                expected: ValueType::U32,
                found: ValueType::I32
            }
        );
        file.set("llama.attention.head_count", F32, &4f32.to_le_bytes());
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key: "llama.attention.head_count",
                expected: ValueType::U32,
                found: ValueType::F32
            }
        );
    }

    #[test]
    fn sizes_past_the_address_space_are_refused() {
        let mut file = base(true);
        file.set("llama.embedding_length", U64, &(1u64 << 40).to_le_bytes());
        let expected = if cfg!(target_pointer_width = "64") {
            // Fits a usize, but dim² does not.
            Error::SizeOverflow
        } else {
            Error::GgufKeyOutOfRange {
                key: "llama.embedding_length",
                value: 1 << 40,
            }
        };
        assert_eq!(error(&file), expected);
    }

    #[test]
    fn f64_epsilon_is_taken_when_exactly_an_f32() {
        let mut file = base(true);
        let key = "llama.attention.layer_norm_rms_epsilon";
        file.set(key, F64, &f64::from(1e-6f32).to_le_bytes());
        assert_eq!(parsed(&file).1.rms_eps, 1e-6f32);
        file.set(key, F64, &0.1f64.to_le_bytes());
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key,
                expected: ValueType::F32,
                found: ValueType::F64
            }
        );
        file.set(key, U32, &1u32.to_le_bytes());
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key,
                expected: ValueType::F32,
                found: ValueType::U32
            }
        );
    }

    #[test]
    fn absent_optional_keys_take_their_defaults() {
        // No head_count_kv: as many kv heads as heads (so attn_k and attn_v are square).
        let mha = Config {
            n_kv_heads: SHAPE.n_heads,
            ..SHAPE
        };
        let mut file = gguf(&mha, true);
        file.remove("llama.attention.head_count_kv")
            .remove("llama.rope.freq_base")
            .remove("llama.rope.dimension_count");
        let (config, numerics) = parsed(&file);
        assert_eq!(config, mha);
        assert_eq!(numerics.rope_base, 10000.0);
        // Given, they are read.
        file.set_f32("llama.rope.freq_base", 500000.0);
        assert_eq!(parsed(&file).1.rope_base, 500000.0);
        // Without head_count_kv the grouped-query file's attn_k no longer fits.
        let mut gqa = base(true);
        gqa.remove("llama.attention.head_count_kv");
        assert_eq!(
            error(&gqa),
            Error::GgufShapeMismatch {
                tensor: GgufName::new("blk.0.attn_k.weight"),
                expected: [8, 8],
                found: [8, 4, 1, 1]
            }
        );
    }

    #[test]
    fn every_required_key_must_be_there() {
        for key in cases([
            "general.architecture",
            "llama.embedding_length",
            "llama.feed_forward_length",
            "llama.block_count",
            "llama.attention.head_count",
            "llama.context_length",
            "llama.attention.layer_norm_rms_epsilon",
            "tokenizer.ggml.tokens",
        ]) {
            let mut file = base(true);
            file.remove(key);
            assert_eq!(error(&file), Error::GgufMissingKey { key }, "{key}");
        }
    }

    #[test]
    fn other_architectures_are_refused() {
        let mut file = base(true);
        file.set("general.architecture", STRING, &string(b"qwen2"));
        assert_eq!(
            error(&file),
            Error::GgufArchitecture {
                found: GgufName::new("qwen2")
            }
        );
        file.set("general.architecture", U32, &1u32.to_le_bytes());
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key: "general.architecture",
                expected: ValueType::String,
                found: ValueType::U32
            }
        );
    }

    #[test]
    fn zero_sizes_and_empty_vocabularies_are_out_of_range() {
        for key in cases([
            "llama.embedding_length",
            "llama.feed_forward_length",
            "llama.block_count",
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "llama.context_length",
            "llama.rope.dimension_count",
        ]) {
            let mut file = base(true);
            file.set_u32(key, 0);
            assert_eq!(
                error(&file),
                Error::GgufKeyOutOfRange { key, value: 0 },
                "{key}"
            );
        }
        let mut file = base(true);
        let key = "tokenizer.ggml.tokens";
        file.set(key, ARRAY, &array(STRING, 0, &[]));
        assert_eq!(error(&file), Error::GgufKeyOutOfRange { key, value: 0 });
        file.set(key, STRING, &string(b"a b c"));
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key,
                expected: ValueType::Array,
                found: ValueType::String
            }
        );
    }

    #[test]
    fn shapes_must_make_a_valid_config() {
        let mut file = base(true);
        file.set_u32("llama.attention.head_count", 3);
        assert_eq!(
            error(&file),
            Error::HeadsDoNotDivideDim { dim: 8, n_heads: 3 }
        );
        let mut file = base(true);
        file.set_u32("llama.attention.head_count_kv", 3);
        assert_eq!(
            error(&file),
            Error::KvHeadsDoNotDivideHeads {
                n_heads: 4,
                n_kv_heads: 3
            }
        );
    }

    #[test]
    fn bad_floats_are_out_of_range() {
        for key in [
            "llama.attention.layer_norm_rms_epsilon",
            "llama.rope.freq_base",
        ] {
            for value in cases([-1e-5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]) {
                let mut file = base(true);
                file.set_f32(key, value);
                let err = error(&file);
                assert!(
                    matches!(err, Error::GgufFloatOutOfRange { key: k, value: v }
                        if k == key && v.to_bits() == value.to_bits()),
                    "{key} = {value}: {err:?}"
                );
            }
            // Zero is allowed (the forward pass copes with it).
            let mut file = base(true);
            file.set_f32(key, 0.0);
            parsed(&file);
        }
    }

    #[test]
    fn partial_rotary_embeddings_are_refused() {
        let mut file = base(true);
        file.set_u32("llama.rope.dimension_count", 1);
        assert_eq!(
            error(&file),
            Error::GgufPartialRotary {
                rope_dims: 1,
                head_size: 2
            }
        );
        file.set("llama.rope.dimension_count", STRING, &string(b"2"));
        assert_eq!(
            error(&file),
            Error::GgufWrongType {
                key: "llama.rope.dimension_count",
                expected: ValueType::U32,
                found: ValueType::String
            }
        );
    }

    #[test]
    fn unsupported_features_are_refused_unless_off() {
        for (key, type_id, value) in cases([
            ("llama.rope.scaling.type", STRING, string(b"linear")),
            ("llama.rope.scaling.type", STRING, string(b"yarn")),
            ("llama.expert_count", U32, 8u32.to_le_bytes().to_vec()),
            ("llama.expert_used_count", U32, 2u32.to_le_bytes().to_vec()),
        ]) {
            let mut file = base(true);
            file.set(key, type_id, &value);
            assert_eq!(error(&file), Error::GgufUnsupportedFeature { key }, "{key}");
        }
        // Written as off, they are no feature at all.
        let mut file = base(true);
        file.set("llama.rope.scaling.type", STRING, &string(b"none"))
            .set_u32("llama.expert_count", 0)
            .set("llama.expert_used_count", U64, &0u64.to_le_bytes());
        assert_eq!(parsed(&file).0, SHAPE);
    }

    #[test]
    fn unknown_tensors_are_refused() {
        for (name, dims) in cases([
            ("blk.0.attn_q.bias", &[8u64][..]),
            ("rope_freqs.weight", &[1]),
            ("blk.2.attn_q.weight", &[8, 8]),
            ("blk.00.attn_q.weight", &[8, 8]),
            ("blk.0.ffn_gate_exps.weight", &[8, 12, 2]),
            ("output.bias", &[6]),
        ]) {
            let mut file = base(true);
            file.add_tensor(name, dims);
            assert_eq!(
                error(&file),
                Error::GgufUnknownTensor {
                    tensor: GgufName::new(name)
                },
                "{name}"
            );
        }
    }

    #[test]
    fn every_needed_tensor_must_be_there() {
        let file = base(true);
        for tensor in cases(&file.tensors) {
            let mut broken = file.clone();
            broken.remove_tensor(&tensor.name);
            assert_eq!(
                error(&broken),
                Error::GgufMissingTensor {
                    tensor: GgufName::new(&tensor.name)
                },
                "{}",
                tensor.name
            );
        }
        // Without output.weight the classifier is the embedding.
        let mut untied = base(false);
        assert!(!parsed(&untied).0.shared_classifier);
        untied.remove_tensor("output.weight");
        assert!(parsed(&untied).0.shared_classifier);
    }

    #[test]
    fn shapes_must_match_the_hyperparameters() {
        for (name, dims, expected) in cases([
            ("blk.1.attn_k.weight", &[8u64, 8][..], [8, 4]),
            ("blk.0.attn_q.weight", &[8, 8, 1, 2], [8, 8]),
            ("blk.0.ffn_down.weight", &[8, 12], [12, 8]),
            ("blk.1.attn_norm.weight", &[8, 2], [8, 1]),
            ("output_norm.weight", &[4], [8, 1]),
            ("token_embd.weight", &[6, 8], [8, 6]),
            ("output.weight", &[8, 7], [8, 6]),
        ]) {
            let mut file = base(false);
            let t = file.tensor(name);
            let n: u64 = dims.iter().product();
            t.dims = dims.to_vec();
            t.bytes = vec![0; 4 * n as usize];
            let mut found = [1; 4];
            for (f, &d) in found.iter_mut().zip(dims) {
                *f = d as usize;
            }
            assert_eq!(
                error(&file),
                Error::GgufShapeMismatch {
                    tensor: GgufName::new(name),
                    expected,
                    found
                },
                "{name}"
            );
        }
        // The vocabulary size comes from the token list: one token more and the
        // embedding no longer fits.
        let mut file = base(true);
        let tokens: Vec<u8> = (0..7)
            .flat_map(|i| string(format!("t{i}").as_bytes()))
            .collect();
        file.set("tokenizer.ggml.tokens", ARRAY, &array(STRING, 7, &tokens));
        assert_eq!(
            error(&file),
            Error::GgufShapeMismatch {
                tensor: GgufName::new("token_embd.weight"),
                expected: [8, 7],
                found: [8, 6, 1, 1]
            }
        );
    }

    #[test]
    fn weight_types_are_checked_per_tensor() {
        // Norms must be F32.
        let mut file = base(true);
        let t = file.tensor("blk.1.ffn_norm.weight");
        t.ty = T_F16;
        t.bytes.truncate(16);
        assert_eq!(
            error(&file),
            Error::GgufWeightType {
                tensor: GgufName::new("blk.1.ffn_norm.weight"),
                ggml_type: GgmlType::F16
            }
        );
        // Matrices may be any weight type, but not integers.
        let mut file = base(true);
        file.tensor("blk.0.attn_v.weight").ty = T_I32;
        assert_eq!(
            error(&file),
            Error::GgufWeightType {
                tensor: GgufName::new("blk.0.attn_v.weight"),
                ggml_type: GgmlType::I32
            }
        );
        // Mixed types: F16 and Q8_0 matrices beside F32 ones.
        let mut file = base(true);
        let t = file.tensor("blk.0.attn_q.weight");
        t.ty = T_F16;
        t.bytes = [0x00, 0x3c].repeat(64); // 1.0 in f16
        let wide = Config {
            hidden_dim: 32,
            ..SHAPE
        };
        file.set_u32("llama.feed_forward_length", 32);
        for l in 0..2 {
            let t = file.tensor(&format!("blk.{l}.ffn_down.weight"));
            t.dims = vec![32, 8];
            t.ty = T_Q8_0;
            t.bytes = [[0x00, 0x3c].as_slice(), &[1; 32]].concat().repeat(8);
            for name in ["ffn_gate", "ffn_up"] {
                let t = file.tensor(&format!("blk.{l}.{name}.weight"));
                t.dims = vec![8, 32];
                t.bytes = vec![0; 4 * 8 * 32];
            }
        }
        let bytes = file.bytes();
        with_model(&bytes, 2, |m| {
            let m = m.unwrap();
            assert_eq!(m.config, wide);
            let layer = m.weights.layer(&m.config, 0);
            assert!(matches!(layer.wq, Matrix::Ggml(g) if g.ty == GgmlType::F16));
            assert!(matches!(layer.w2, Matrix::Ggml(g) if g.ty == GgmlType::Q8_0));
            assert!(matches!(layer.wk, Matrix::F32 { .. }));
            assert_eq!((layer.w2.rows(), layer.w2.cols()), (8, 32));
        });
        let finite = logits(&bytes, 2, &[2, 4]);
        assert!(finite.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn misaligned_bytes_and_tensors_are_refused() {
        // The whole file one byte off.
        let bytes = base(true).bytes();
        let words = aligned(&[&[0u8][..], &bytes].concat());
        let shifted = &bytemuck::cast_slice::<u32, u8>(&words)[1..=bytes.len()];
        let mut table = [LayerWeights::EMPTY; 2];
        assert_eq!(
            Model::parse(shifted, &mut table).unwrap_err(),
            Error::Misaligned
        );
        // An F32 tensor at an address that is not a multiple of 4: alignment 2 and a data
        // section starting at 2 mod 4 (a key of the right length puts it there).
        let mut file = base(true);
        let with_name = |file: &mut File, pad: usize| {
            file.set("general.name", STRING, &string("x".repeat(pad).as_bytes()));
            let mut b = file.builder().alignment(2);
            for t in &file.tensors {
                b = b.tensor(&t.name, &t.dims, t.ty, &t.bytes);
            }
            b.build()
        };
        let bytes = (0..4)
            .map(|pad| with_name(&mut file, pad))
            .find(|bytes| Gguf::parse(bytes).unwrap().data_offset() % 4 == 2)
            .expect("one of four name lengths puts the data at 2 mod 4");
        let err = with_model(&bytes, 2, |m| m.map(|_| ()).unwrap_err());
        assert_eq!(err, Error::Misaligned);
    }

    #[test]
    fn layer_tensor_names_have_one_spelling() {
        assert_eq!(layer_tensor("blk.0.attn_q.weight"), Some((0, 1)));
        assert_eq!(layer_tensor("blk.12.ffn_down.weight"), Some((12, 8)));
        for name in [
            "blk.01.attn_q.weight",
            "blk.+1.attn_q.weight",
            "blk..attn_q.weight",
            "blk.1.attn_q.bias",
            "blk.1.attn_q",
            "blk.99999999999999999999999.attn_q.weight",
            "rope_freqs.weight",
        ] {
            assert_eq!(layer_tensor(name), None, "{name}");
        }
    }
}
