/// The bank's tunable limits (PROTOCOL.md §9.5 and §5.3).
public struct BankPolicy: Sendable, Equatable {
    /// Longest lifetime a ticket may ask for, in seconds (default 7 days).
    public var maxLifetime: UInt32
    /// How long after `expires` a merchant may still claim, in seconds.
    public var grace: UInt64
    /// Longest chain a ticket may carry (the protocol's own cap is 65536).
    public var maxChainLength: UInt32
    /// Largest `limit` one ticket may escrow, in micro-units. Default 10^12
    /// (one million currency units): far below Int64.max (≈ 9.2 × 10^18), so
    /// sums of many tickets stay representable in SQLite's signed integers.
    public var maxLimit: UInt64

    public static let defaultMaxLimit: UInt64 = 1_000_000_000_000

    public init(
        maxLifetime: UInt32 = 7 * 86400, grace: UInt64 = 86400, maxChainLength: UInt32 = 65536,
        maxLimit: UInt64 = BankPolicy.defaultMaxLimit
    ) {
        self.maxLifetime = maxLifetime
        self.grace = grace
        self.maxChainLength = min(maxChainLength, 65536)
        self.maxLimit = min(maxLimit, UInt64(Int64.max))
    }
}
