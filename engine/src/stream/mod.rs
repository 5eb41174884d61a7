//! Redis streams on the partition log: a stream is partition 0 of a topic, an entry is a
//! record. This module holds what the RESP front door needs from storage, with no I/O:
//! - [`id`]: entry IDs (`<ms>-<seq>`), how XADD assigns them and how range bounds parse;
//! - [`entry`]: how an entry is written as a record and how any record (also one a Kafka
//!   producer wrote) is read back as an entry;
//! - [`deleted`]: the entries XDEL removed from the middle of a stream, which reads skip.
pub mod deleted;
pub mod entry;
pub mod id;
