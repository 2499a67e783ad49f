//! Generated protocol types (from `proto/`), one module per protobuf package.

#![allow(missing_docs, clippy::all)]

pub mod skypilot {
    pub mod v1 {
        tonic::include_proto!("skypilot.v1");
    }
}

pub mod google {
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Encoded `FileDescriptorSet` of every service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/skypilot_descriptor.bin"));
