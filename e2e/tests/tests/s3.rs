//! MinIO on 127.0.0.1 through aws-sdk-s3, configured as the driver will be: the standard
//! credential chain, AWS_ENDPOINT_URL, path-style addressing.

use aws_sdk_s3::primitives::ByteStream;
use rehearsal_e2e::{sandbox_env, unique};

#[tokio::test]
async fn object_round_trips_byte_identical() {
    let bucket = sandbox_env("REHEARSAL_S3_BUCKET");
    let s3 = rehearsal_e2e::s3_client().await;

    // Every byte value, several times over, so encoding mistakes cannot hide.
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let key = format!("e2e/{}/blob.bin", unique("s3"));
    s3.put_object().bucket(&bucket).key(&key).body(ByteStream::from(body.clone())).send().await.expect("put_object");
    let got = s3.get_object().bucket(&bucket).key(&key).send().await.expect("get_object");
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert_eq!(bytes.len(), body.len());
    assert!(bytes.as_ref() == body.as_slice(), "object read back differs");
    s3.delete_object().bucket(&bucket).key(&key).send().await.expect("delete_object");
}
