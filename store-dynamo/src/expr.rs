//! Expressions and transaction items, built as plain data (so they can be unit-tested without a
//! server) and turned into SDK types at the last moment.
//!
//! Attribute names always go through `#n` placeholders and values through `:v` placeholders,
//! so reserved words (`status`, `name`, `data`...) never need thought.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// Placeholders of one expression set (condition + update share them).
#[derive(Debug, Default)]
pub struct Placeholders {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    pub fn name(&mut self, attr: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, a)| *a == attr) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_string());
        placeholder
    }

    pub fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values_opt(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// A condition expression.
#[derive(Clone, Debug)]
pub enum Cond {
    Exists(&'static str),
    NotExists(&'static str),
    Eq(&'static str, AttributeValue),
    Le(&'static str, AttributeValue),
    Lt(&'static str, AttributeValue),
    Gt(&'static str, AttributeValue),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn render(&self, p: &mut Placeholders) -> String {
        match self {
            Cond::Exists(a) => format!("attribute_exists({})", p.name(a)),
            Cond::NotExists(a) => format!("attribute_not_exists({})", p.name(a)),
            Cond::Eq(a, v) => format!("{} = {}", p.name(a), p.value(v.clone())),
            Cond::Le(a, v) => format!("{} <= {}", p.name(a), p.value(v.clone())),
            Cond::Lt(a, v) => format!("{} < {}", p.name(a), p.value(v.clone())),
            Cond::Gt(a, v) => format!("{} > {}", p.name(a), p.value(v.clone())),
            Cond::And(parts) => join(parts, " AND ", p),
            Cond::Or(parts) => join(parts, " OR ", p),
        }
    }

    /// `self AND other`, flattening.
    pub fn and(self, other: Cond) -> Cond {
        match self {
            Cond::And(mut parts) => {
                parts.push(other);
                Cond::And(parts)
            }
            first => Cond::And(vec![first, other]),
        }
    }
}

fn join(parts: &[Cond], sep: &str, p: &mut Placeholders) -> String {
    let rendered: Vec<String> = parts.iter().map(|c| format!("({})", c.render(p))).collect();
    rendered.join(sep)
}

/// An update expression: SET, REMOVE and ADD clauses.
#[derive(Clone, Debug, Default)]
pub struct UpdateExpr {
    pub set: Vec<(&'static str, AttributeValue)>,
    pub remove: Vec<&'static str>,
    pub add: Vec<(&'static str, AttributeValue)>,
}

impl UpdateExpr {
    pub fn set(&mut self, attr: &'static str, value: AttributeValue) -> &mut Self {
        self.set.push((attr, value));
        self
    }

    pub fn remove(&mut self, attr: &'static str) -> &mut Self {
        self.remove.push(attr);
        self
    }

    pub fn add(&mut self, attr: &'static str, value: AttributeValue) -> &mut Self {
        self.add.push((attr, value));
        self
    }

    pub fn render(&self, p: &mut Placeholders) -> String {
        let mut clauses = Vec::new();
        if !self.set.is_empty() {
            let parts: Vec<String> = self
                .set
                .iter()
                .map(|(a, v)| format!("{} = {}", p.name(a), p.value(v.clone())))
                .collect();
            clauses.push(format!("SET {}", parts.join(", ")));
        }
        if !self.remove.is_empty() {
            let parts: Vec<String> = self.remove.iter().map(|a| p.name(a)).collect();
            clauses.push(format!("REMOVE {}", parts.join(", ")));
        }
        if !self.add.is_empty() {
            let parts: Vec<String> = self
                .add
                .iter()
                .map(|(a, v)| format!("{} {}", p.name(a), p.value(v.clone())))
                .collect();
            clauses.push(format!("ADD {}", parts.join(", ")));
        }
        clauses.join(" ")
    }

    fn size(&self) -> usize {
        self.set
            .iter()
            .chain(self.add.iter())
            .map(|(a, v)| a.len() + value_size(v))
            .sum::<usize>()
            + self.remove.iter().map(|a| a.len()).sum::<usize>()
    }
}

/// One item of a `TransactWriteItems` request.
#[derive(Clone, Debug)]
pub enum Write {
    Put {
        item: Item,
        cond: Option<Cond>,
    },
    Update {
        key: Item,
        update: UpdateExpr,
        cond: Option<Cond>,
    },
    Delete {
        key: Item,
        cond: Option<Cond>,
    },
    Check {
        key: Item,
        cond: Cond,
    },
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// Approximate stored size of a value, as DynamoDB counts it (UTF-8 bytes, numbers ~ digits).
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => item_size(m) + 3,
        AttributeValue::L(l) => l.iter().map(value_size).sum::<usize>() + 3,
        _ => 1,
    }
}

pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

impl Write {
    /// The item's key (`pk`, `sk`), to keep one write per item.
    pub fn key_pair(&self) -> (String, String) {
        let map = match self {
            Write::Put { item, .. } => item,
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => key,
        };
        let get = |k: &str| match map.get(k) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        (get("pk"), get("sk"))
    }

    /// Roughly what the item adds to the 4 MB transaction limit.
    pub fn size(&self) -> usize {
        match self {
            Write::Put { item, .. } => item_size(item),
            Write::Update { key, update, .. } => item_size(key) + update.size(),
            Write::Delete { key, .. } | Write::Check { key, .. } => item_size(key),
        }
    }

    pub fn to_sdk(&self, table: &str) -> Result<TransactWriteItem, String> {
        let mut p = Placeholders::default();
        let built = match self {
            Write::Put { item, cond } => {
                let cond = cond.as_ref().map(|c| c.render(&mut p));
                TransactWriteItem::builder().put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()))
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(p.names_opt())
                        .set_expression_attribute_values(p.values_opt())
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
            Write::Update { key, update, cond } => {
                let expr = update.render(&mut p);
                let cond = cond.as_ref().map(|c| c.render(&mut p));
                TransactWriteItem::builder().update(
                    Update::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()))
                        .update_expression(expr)
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(p.names_opt())
                        .set_expression_attribute_values(p.values_opt())
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
            Write::Delete { key, cond } => {
                let cond = cond.as_ref().map(|c| c.render(&mut p));
                TransactWriteItem::builder().delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()))
                        .set_condition_expression(cond)
                        .set_expression_attribute_names(p.names_opt())
                        .set_expression_attribute_values(p.values_opt())
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
            Write::Check { key, cond } => {
                let cond = cond.render(&mut p);
                TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()))
                        .condition_expression(cond)
                        .set_expression_attribute_names(p.names_opt())
                        .set_expression_attribute_values(p.values_opt())
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        Ok(built.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_render_with_placeholders() {
        let mut p = Placeholders::default();
        let cond = Cond::Eq("ver", n(3))
            .and(Cond::Eq("status", s("RUNNING")))
            .and(Cond::Or(vec![Cond::NotExists("n"), Cond::Lt("n", n(2))]));
        assert_eq!(
            cond.render(&mut p),
            "(#n0 = :v0) AND (#n1 = :v1) AND ((attribute_not_exists(#n2)) OR (#n2 < :v2))"
        );
        assert_eq!(p.names["#n1"], "status");
        assert_eq!(p.values[":v2"], n(2));
    }

    #[test]
    fn updates_render_set_remove_add_and_share_placeholders() {
        let mut p = Placeholders::default();
        let mut u = UpdateExpr::default();
        u.set("status", s("SUCCEEDED"))
            .set("runnable", AttributeValue::Bool(false))
            .remove("g2pk")
            .add("n", n(-1));
        let expr = u.render(&mut p);
        let cond = Cond::Eq("status", s("RUNNING")).render(&mut p);
        assert_eq!(expr, "SET #n0 = :v0, #n1 = :v1 REMOVE #n2 ADD #n3 :v2");
        // The condition reuses the name placeholder of `status`.
        assert_eq!(cond, "#n0 = :v3");
    }

    #[test]
    fn writes_know_their_key_and_size() {
        let mut item = key("EX#1", "OP#a");
        item.insert("d".into(), s("x".repeat(1000)));
        let w = Write::Put { item, cond: None };
        assert_eq!(w.key_pair(), ("EX#1".to_string(), "OP#a".to_string()));
        assert!(w.size() > 1000 && w.size() < 1100);
        let sdk = w.to_sdk("t").unwrap();
        assert!(sdk.put().is_some());
        let check = Write::Check {
            key: key("EX#1", "TM#x"),
            cond: Cond::Exists("pk"),
        };
        let sdk = check.to_sdk("t").unwrap();
        assert_eq!(
            sdk.condition_check().unwrap().condition_expression(),
            "attribute_exists(#n0)"
        );
    }
}
