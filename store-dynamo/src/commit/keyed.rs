//! One write per item key. A batch may write the same operation, timer or callback more than
//! once; the transaction must touch each item once, with the batch's last version of it, as
//! `INSERT OR REPLACE` in order does in the embedded store.

use std::collections::HashMap;

/// Keeps one write per item key, remembering the order of first appearance.
pub(super) struct Keyed<T> {
    order: Vec<String>,
    map: HashMap<String, T>,
}

impl<T> Keyed<T> {
    pub(super) fn new() -> Self {
        Self {
            order: Vec::new(),
            map: HashMap::new(),
        }
    }

    pub(super) fn set(&mut self, k: String, v: T) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push(k);
        }
    }

    pub(super) fn contains_key(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.map.values_mut()
    }

    pub(super) fn into_iter(mut self) -> impl Iterator<Item = (String, T)> {
        self.order.into_iter().filter_map(move |k| {
            let v = self.map.remove(&k)?;
            Some((k, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_writes_keep_the_last_value_in_first_order() {
        let mut k = Keyed::new();
        k.set("a".into(), 1);
        k.set("b".into(), 2);
        k.set("a".into(), 3);
        assert_eq!(
            k.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), 3), ("b".into(), 2)]
        );
    }
}
