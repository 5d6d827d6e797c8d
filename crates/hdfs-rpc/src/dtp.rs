//! DataTransferProtocol codec.
