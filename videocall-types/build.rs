//! Generates the Rust types from `proto/*.proto` with protobuf-codegen's pure-Rust parser,
//! so no `protoc` is needed on the build machine.

use protobuf::reflect::FieldDescriptor;
use protobuf_codegen::{Customize, CustomizeCallback};

/// The media payloads (`EncryptedMedia.ciphertext`, `MediaPacket.data`) are `bytes::Bytes`:
/// parsed from a `Bytes` they are slices of the received buffer, not copies, and a frame is
/// opened in place.
struct MediaAsBytes;

impl CustomizeCallback for MediaAsBytes {
    fn field(&self, field: &FieldDescriptor) -> Customize {
        let media = matches!(
            (field.containing_message().name(), field.name()),
            ("EncryptedMedia", "ciphertext") | ("MediaPacket", "data")
        );
        Customize::default().tokio_bytes(media)
    }
}

fn main() {
    let protos = ["proto/videocall.proto"];
    protobuf_codegen::Codegen::new()
        .pure()
        .customize_callback(MediaAsBytes)
        .includes(["proto"])
        .inputs(protos)
        .cargo_out_dir("protos")
        .run_from_script();
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
}
