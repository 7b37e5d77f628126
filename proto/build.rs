//! Compiles `proto/berth/v1/*.proto` with protox (pure Rust), so a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/berth/v1/berth.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // prost's codec, with a request that does not decode answered INVALID_ARGUMENT.
        .codec_path("crate::codec::BerthCodec")
        .compile_fds(fds)?;
    Ok(())
}
