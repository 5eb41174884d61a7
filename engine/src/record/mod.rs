//! Kafka RecordBatch v2: the unit of storage. Stored bytes are wire bytes.
pub mod batch;
