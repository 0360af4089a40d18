//! The binary form of ACL bindings and filters, for the CreateAcls and DeleteAcls calls and
//! the image snapshots (`rpc`). Kafka's codes, one byte each; an unknown code decodes to
//! UNKNOWN, which the controller refuses.

use super::rpc::{Reader, Wire};
use crate::security::acl::{
    AclBinding, AclEntry, AclFilter, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};

fn code(code: i8, out: &mut Vec<u8>) {
    (code as u8).put(out);
}

fn get_code(reader: &mut Reader) -> Result<i8, String> {
    Ok(u8::get(reader)? as i8)
}

impl Wire for AclBinding {
    fn put(&self, out: &mut Vec<u8>) {
        code(self.pattern.resource_type.code(), out);
        code(self.pattern.pattern_type.code(), out);
        self.pattern.name.put(out);
        self.entry.principal.put(out);
        self.entry.host.put(out);
        code(self.entry.operation.code(), out);
        code(self.entry.permission.code(), out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::from_code(get_code(reader)?),
                pattern_type: PatternType::from_code(get_code(reader)?),
                name: String::get(reader)?,
            },
            entry: AclEntry {
                principal: String::get(reader)?,
                host: String::get(reader)?,
                operation: Operation::from_code(get_code(reader)?),
                permission: Permission::from_code(get_code(reader)?),
            },
        })
    }
}

impl Wire for AclFilter {
    fn put(&self, out: &mut Vec<u8>) {
        code(self.resource_type.code(), out);
        code(self.pattern_type.code(), out);
        self.name.put(out);
        self.principal.put(out);
        self.host.put(out);
        code(self.operation.code(), out);
        code(self.permission.code(), out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(AclFilter {
            resource_type: ResourceType::from_code(get_code(reader)?),
            pattern_type: PatternType::from_code(get_code(reader)?),
            name: Option::get(reader)?,
            principal: Option::get(reader)?,
            host: Option::get(reader)?,
            operation: Operation::from_code(get_code(reader)?),
            permission: Permission::from_code(get_code(reader)?),
        })
    }
}
