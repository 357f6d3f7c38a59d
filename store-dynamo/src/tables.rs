//! Creating the table and its two indexes (`aegis dynamodb create-tables`).

use super::io::{GSI1, GSI2, Table};
use aegis_core::store::{Error, Result};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use std::time::Duration;

fn build_err(e: impl std::fmt::Display) -> Error {
    Error::Fatal(e.to_string())
}

fn attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(build_err)?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .map_err(build_err)?,
    ])
}

fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(hash, range)?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_err)
}

/// Creates the table (on-demand capacity) unless it exists, then waits until it and its
/// indexes are active. Returns whether it was created.
pub async fn create(table: &Table) -> Result<bool> {
    let attributes = ["pk", "sk", "g1pk", "g1sk", "g2pk", "g2sk"]
        .into_iter()
        .map(attribute)
        .collect::<Result<Vec<_>>>()?;
    let created = table
        .client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema("pk", "sk")?))
        .global_secondary_indexes(index(GSI1, "g1pk", "g1sk")?)
        .global_secondary_indexes(index(GSI2, "g2pk", "g2sk")?)
        .send()
        .await;
    let created = match created {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            false
        }
        Err(e) => {
            return Err(super::io::classified(
                &e,
                format!("create table {}: {}", table.name, DisplayErrorContext(&e)),
            ));
        }
    };
    for _ in 0..600 {
        if active(table).await? {
            return Ok(created);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Retriable(format!(
        "table {} did not become active",
        table.name
    )))
}

/// Whether the table and its indexes are active; an error when it does not exist.
pub async fn active(table: &Table) -> Result<bool> {
    let described = table
        .client
        .describe_table()
        .table_name(&table.name)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                Error::Fatal(format!(
                    "DynamoDB table {} does not exist: create it with `aegis dynamodb create-tables`",
                    table.name
                ))
            } else {
                super::io::classified(
                    &e,
                    format!("describe table {}: {}", table.name, DisplayErrorContext(&e)),
                )
            }
        })?;
    let Some(description) = described.table else {
        return Ok(false);
    };
    let indexes_active = description
        .global_secondary_indexes()
        .iter()
        .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
    Ok(description.table_status() == Some(&TableStatus::Active) && indexes_active)
}
