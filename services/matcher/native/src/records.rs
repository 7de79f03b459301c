//! Kafka record batches (format v2, magic 2, uncompressed) written in one call. No I/O.
//!
//! The matcher's producer (`services/common/batching_producer.py`) sends an article's fifty
//! alerts per partition in batches. aiokafka appends them one record at a time, through a
//! Python method per record; here a whole batch is written from the lane's lists of keys and
//! values at once. The definition is aiokafka's `DefaultRecordBatchBuilder`, with
//! `BatchBuilder`'s defaults: tests/unit/common/test_record_batch.py holds the two equal,
//! byte for byte. `RecordBatch` has the methods aiokafka's producer calls on a batch handed
//! to `send_batch`, so aiokafka sends, retries and sequences it as its own.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// BaseOffset, Length, PartitionLeaderEpoch, Magic, CRC, Attributes, LastOffsetDelta,
/// FirstTimestamp, MaxTimestamp, ProducerId, ProducerEpoch, BaseSequence, record count.
const HEADER_BYTES: usize = 61;
/// Where the CRC is, and where the bytes it covers (from the attributes on) begin.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
/// The length field counts the bytes after it.
const AFTER_LENGTH: usize = 12;
const MAGIC: u8 = 2;
const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Zig-zag varint, as Kafka (and protobuf's sint64) writes it.
fn push_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

fn optional_bytes<'a>(item: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Option<&'a [u8]>> {
    if item.is_none() {
        return Ok(None);
    }
    match item.cast::<PyBytes>() {
        Ok(bytes) => Ok(Some(bytes.as_bytes())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "a record {what} must be bytes or None, not {}",
            item.get_type().name()?
        ))),
    }
}

fn push_optional(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => push_varint(out, -1),
        Some(data) => {
            push_varint(out, data.len() as i64);
            out.extend_from_slice(data);
        }
    }
}

/// One batch of records for one topic-partition, ready for aiokafka's `send_batch`.
#[pyclass(module = "newsalert_native")]
pub struct RecordBatch {
    /// The header's room, then the records.
    buffer: Vec<u8>,
    records: usize,
    timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    built: Option<Py<PyBytes>>,
}

#[pymethods]
impl RecordBatch {
    /// The records `keys[i]`, `values[i]` from `i = 0`, as many as fit in `max_bytes` (the
    /// first always does, as in aiokafka), all stamped `timestamp_ms`. No producer state yet
    /// (id -1, epoch -1, sequence 0): an idempotent producer sets its own before sending.
    #[new]
    fn new(
        keys: &Bound<'_, PyList>,
        values: &Bound<'_, PyList>,
        max_bytes: usize,
        timestamp_ms: i64,
    ) -> PyResult<Self> {
        if keys.len() != values.len() {
            return Err(PyValueError::new_err(format!(
                "{} keys for {} values",
                keys.len(),
                values.len()
            )));
        }
        let mut buffer = vec![0u8; HEADER_BYTES];
        let mut record = Vec::new();
        let mut records = 0usize;
        for (key, value) in keys.iter().zip(values.iter()) {
            let key = optional_bytes(&key, "key")?;
            let value = optional_bytes(&value, "value")?;
            record.clear();
            record.push(0); // attributes: none are defined for a record
            push_varint(&mut record, 0); // timestamp delta: one time for the batch
            push_varint(&mut record, records as i64); // offset delta
            push_optional(&mut record, key);
            push_optional(&mut record, value);
            push_varint(&mut record, 0); // no headers
            let needed = record.len() + varint_len(record.len() as i64);
            // A batch is full when it would reach `max_bytes`, as aiokafka's C builder (the
            // one its producer uses) has it; its Python fallback still takes a record that
            // fills the batch exactly.
            if records > 0 && buffer.len() + needed >= max_bytes {
                break;
            }
            push_varint(&mut buffer, record.len() as i64);
            buffer.extend_from_slice(&record);
            records += 1;
        }
        Ok(RecordBatch {
            buffer,
            records,
            timestamp_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: 0,
            built: None,
        })
    }

    /// How many of the records given made it into the batch.
    fn record_count(&self) -> usize {
        self.records
    }

    /// The batch's size in bytes, header included.
    fn size(&self) -> usize {
        self.buffer.len()
    }

    /// Always closed: the records are all given up front.
    fn closed(&self) -> bool {
        true
    }

    fn close(&self) {}

    /// The idempotent producer's id, epoch and first sequence number for this batch.
    fn _set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self.built = None;
    }

    /// The batch as Kafka stores it: header, CRC-32C and records.
    fn _build(&mut self, py: Python<'_>) -> Py<PyBytes> {
        if let Some(built) = &self.built {
            return built.clone_ref(py);
        }
        let length = (self.buffer.len() - AFTER_LENGTH) as i32;
        let last_offset_delta = self.records.saturating_sub(1) as i32;
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker sets it
        header.extend_from_slice(&length.to_be_bytes());
        header.extend_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        header.push(MAGIC);
        header.extend_from_slice(&0u32.to_be_bytes()); // the CRC, written below
        header.extend_from_slice(&0i16.to_be_bytes()); // attributes: uncompressed, not transactional
        header.extend_from_slice(&last_offset_delta.to_be_bytes());
        header.extend_from_slice(&self.timestamp_ms.to_be_bytes()); // first timestamp
        header.extend_from_slice(&self.timestamp_ms.to_be_bytes()); // max timestamp
        header.extend_from_slice(&self.producer_id.to_be_bytes());
        header.extend_from_slice(&self.producer_epoch.to_be_bytes());
        header.extend_from_slice(&self.base_sequence.to_be_bytes());
        header.extend_from_slice(&(self.records as i32).to_be_bytes());
        debug_assert_eq!(header.len(), HEADER_BYTES);
        self.buffer[..HEADER_BYTES].copy_from_slice(&header);
        let crc = crc32c::crc32c(&self.buffer[ATTRIBUTES_AT..]);
        self.buffer[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
        let built = PyBytes::new(py, &self.buffer).unbind();
        self.built = Some(built.clone_ref(py));
        built
    }
}
