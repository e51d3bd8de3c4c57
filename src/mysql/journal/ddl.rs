//! The DDL statements the journal reads from its zone's binlog: which tables a
//! statement renamed (`RENAME TABLE a TO b, c TO d`, `ALTER TABLE a RENAME [TO|AS] b`),
//! parsed with `sqlparser`'s MySQL dialect. A statement it cannot parse renames
//! nothing (and is logged): the applier then waits for the missing table by name.

use sqlparser::ast::{AlterTableOperation, ObjectName, RenameTableNameKind, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// A table renamed by a statement: database, old name, new name (same database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub db: String,
    pub from: String,
    pub to: String,
}

/// The renames in `sql`, run with default database `db`. A rename into another
/// database is not a rename within a replicated database and is left out.
pub fn renames(db: &str, sql: &str) -> Result<Vec<Rename>, String> {
    // only worth parsing when it can rename
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("RENAME") {
        return Ok(Vec::new());
    }
    let statements = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for st in statements {
        match st {
            Statement::RenameTable(pairs) => {
                for p in pairs {
                    out.extend(rename(db, &p.old_name, &p.new_name));
                }
            }
            Statement::AlterTable(at) => {
                for op in &at.operations {
                    if let AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to),
                    } = op
                    {
                        out.extend(rename(db, &at.name, to));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn parts(default_db: &str, n: &ObjectName) -> Option<(String, String)> {
    let idents: Vec<String> =
        n.0.iter()
            .map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect::<Option<_>>()?;
    match idents.as_slice() {
        [t] => Some((default_db.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

fn rename(db: &str, from: &ObjectName, to: &ObjectName) -> Option<Rename> {
    let (fd, ft) = parts(db, from)?;
    let (td, tt) = parts(db, to)?;
    (fd == td).then_some(Rename {
        db: fd,
        from: ft,
        to: tt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(db: &str, from: &str, to: &str) -> Rename {
        Rename {
            db: db.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn renames_of_every_form() {
        assert_eq!(
            renames("shop", "RENAME TABLE orders TO orders2").unwrap(),
            vec![r("shop", "orders", "orders2")]
        );
        assert_eq!(
            renames(
                "",
                "RENAME TABLE `shop`.`orders` TO `shop`.`_orders_old`, `shop`.`_orders_new` TO `shop`.`orders`"
            )
            .unwrap(),
            vec![r("shop", "orders", "_orders_old"), r("shop", "_orders_new", "orders")],
            "pt-online-schema-change's swap"
        );
        assert_eq!(
            renames("shop", "ALTER TABLE orders RENAME TO o2").unwrap(),
            vec![r("shop", "orders", "o2")]
        );
        assert_eq!(
            renames("shop", "alter table `we``ird` rename as x").unwrap(),
            vec![r("shop", "we`ird", "x")]
        );
        assert_eq!(
            renames("shop", "RENAME TABLE orders TO other.orders").unwrap(),
            vec![],
            "to another database"
        );
        assert_eq!(renames("shop", "ALTER TABLE orders ADD COLUMN x INT").unwrap(), vec![]);
        assert!(renames("shop", "RENAME TABLE (").is_err());
    }
}
