//! The S3 bucket of `aegis-aws` as the place large values spill to.

use crate::SpillBucket;
use aegis_aws::s3::{Bucket, S3Uri};

/// The DynamoDB store spills values too large for an item to objects of the artifact bucket.
impl SpillBucket for Bucket {
    fn key(&self, name: &str) -> String {
        Bucket::key(self, name)
    }
    fn reference(&self, key: &str) -> String {
        self.uri(key.to_string()).to_string()
    }
    fn key_of(&self, reference: &str) -> Option<String> {
        S3Uri::parse(reference).ok().map(|uri| uri.key)
    }
    fn put(
        &self,
        key: String,
        json: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            Bucket::put(self, key, "application/json", json)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn get<'a>(
        &'a self,
        reference: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move {
            let uri = S3Uri::parse(reference).map_err(|e| e.to_string())?;
            Ok(Bucket::get(self, &uri)
                .await
                .map_err(|e| e.to_string())?
                .map(|(bytes, _)| bytes))
        })
    }
}
