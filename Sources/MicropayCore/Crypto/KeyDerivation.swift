internal import CEngine

/// The bank's key schedule of PROTOCOL.md §1: every party key is re-derived
/// from the master key, so the bank stores none.
public enum KeyDerivation {
    public enum Role: Character, Sendable {
        case customer = "C"
        case merchant = "M"
    }

    /// K_C or K_M = HMAC(master, "MPK1" || role || u32 bank_id || u64 account).
    public static func accountKey(master: SecretKey, role: Role, bankID: UInt32, account: UInt64) -> SecretKey {
        Engine.ensureInitialized()
        let roleByte = CChar(role.rawValue.asciiValue!)
        return .generate { out in
            let status = mp_derive_account_key(master.pointer, roleByte, bankID, account, out)
            precondition(status == MP_OK)
        }
    }

    /// The master key's check value: the first 8 bytes of HMAC(master, "MPKC"),
    /// big-endian. The ledger keeps it to recognise the key it was created
    /// with; like any MAC of a constant, it gives nothing of the key away.
    public static func masterKeyCheck(master: SecretKey) -> UInt64 {
        Engine.ensureInitialized()
        return master.subkey(label: "MPKC").withUnsafeBytes { bytes in
            bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
        }
    }

    /// K_CM = HMAC(master, "MPS1" || u32 bank_id || u64 serial): a ticket's session key.
    public static func sessionKey(master: SecretKey, bankID: UInt32, serial: UInt64) -> SecretKey {
        Engine.ensureInitialized()
        return .generate { out in mp_derive_session_key(master.pointer, bankID, serial, out) }
    }
}
