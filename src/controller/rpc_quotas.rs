//! The binary form of client quota entities and alterations, for the AlterClientQuotas call
//! and the image snapshots (`rpc`). An entity that would not pass `QuotaEntity::new` is
//! refused when read.

use super::rpc::{Reader, Wire};
use super::QuotaAlteration;
use crate::quota::QuotaEntity;

impl Wire for f64 {
    fn put(&self, out: &mut Vec<u8>) {
        self.to_bits().put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(f64::from_bits(u64::get(reader)?))
    }
}

impl Wire for QuotaEntity {
    fn put(&self, out: &mut Vec<u8>) {
        self.parts().to_vec().put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let parts = Vec::<(String, Option<String>)>::get(reader)?;
        QuotaEntity::new(parts).map_err(|error| error.to_string())
    }
}

impl Wire for QuotaAlteration {
    fn put(&self, out: &mut Vec<u8>) {
        self.entity.put(out);
        self.ops.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(QuotaAlteration {
            entity: QuotaEntity::get(reader)?,
            ops: Vec::get(reader)?,
        })
    }
}
