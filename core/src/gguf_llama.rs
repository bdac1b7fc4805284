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
    if let Some(value) = file.metadata("llama.rope.dimension_count") {
        let key = "llama.rope.dimension_count";
        let rope_dims = size(file, key).map_err(|_| wrong_type(key, ValueType::U32, &value))?;
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
    use super::*;

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
