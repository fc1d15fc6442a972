//! Generates the Rust types from `proto/*.proto` with protobuf-codegen's pure-Rust parser,
//! so no `protoc` is needed on the build machine.

fn main() {
    let protos = ["proto/videocall.proto"];
    protobuf_codegen::Codegen::new()
        .pure()
        .includes(["proto"])
        .inputs(protos)
        .cargo_out_dir("protos")
        .run_from_script();
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
}
