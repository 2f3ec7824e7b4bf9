import ArgumentParser
import Foundation
import MicropayCore
import MicropayCustomer

struct CustomerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customer",
        abstract: "The customer: ask for tickets, pay merchants, open goods.",
        discussion: """
            The customer's wallet is one SQLite file (--wallet, default ./wallet.db,
            mode 0600): the account, K_C, the secret that seeds every hash chain, and
            the tickets with what has been paid on each.
            """,
        subcommands: [CustomerRequest.self, CustomerAccept.self, CustomerPay.self, CustomerOpenGoods.self]
    )
}

struct WalletLocation: ParsableArguments {
    @Option(help: ArgumentHelp("The customer's wallet file.", valueName: "file"))
    var wallet: String = "wallet.db"

    func open() throws -> Customer {
        guard FileManager.default.fileExists(atPath: wallet) else {
            throw ToolError(.noInput, "\(wallet): no wallet here (customer request creates it, given --bank-id, --account and --key-file)")
        }
        return try customerCall(wallet) { () throws(CustomerError) in try Customer.open(walletPath: wallet) }
    }
}

struct CustomerRequest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Write a TicketRequest (§5.2) for the bank.",
        discussion: """
            Chain mode (--mode chain): --length words of --unit each; the limit is
            length × unit. Order mode (--mode order): MAC'd orders up to --limit.
            The first request creates the wallet, given --bank-id, --account and
            --key-file (or --key) from bank open-account.

            Example:
              micropay customer request --wallet alice.db --bank-id 7 --account 1 --key-file alice.key \\
                  --mode chain --merchant 2 --unit 10 --length 1000 --out req.bin
              micropay bank issue --dir bank --request req.bin --envelope env.bin --ticket ticket.bin
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable { case chain, order }

    @OptionGroup var location: WalletLocation
    @Option(name: .customLong("bank-id"), help: "The bank's id (only to create the wallet).")
    var bankID: UInt32?
    @Option(help: "The customer's account number (only to create the wallet).")
    var account: UInt64?
    @Option(help: ArgumentHelp("K_C as 64 hex digits (only to create the wallet).", valueName: "hex"))
    var key: String?
    @Option(name: .customLong("key-file"), help: ArgumentHelp("A file holding K_C (only to create the wallet).", valueName: "file"))
    var keyFile: String?
    @Option(help: "chain or order.")
    var mode: Mode
    @Option(help: "The merchant's account number.")
    var merchant: UInt64
    @Option(help: "Chain mode: micro-units per word.")
    var unit: UInt64?
    @Option(help: "Chain mode: number of words (1...65536).")
    var length: UInt32?
    @Option(help: "Order mode: the most the orders may add up to, in micro-units.")
    var limit: UInt64?
    @Option(help: "Seconds the ticket lives.")
    var lifetime: UInt32 = 86400
    @Option(help: ArgumentHelp("Where to write the request.", valueName: "file"))
    var out: String

    func validate() throws {
        switch mode {
        case .chain:
            guard let unit, let length else { throw ValidationError("chain mode needs --unit and --length") }
            guard unit >= 1, (1...65536).contains(length) else { throw ValidationError("--unit must be ≥ 1 and --length 1...65536") }
            guard limit == nil else { throw ValidationError("--limit is for order mode (chain mode's limit is length × unit)") }
        case .order:
            guard let limit, limit >= 1 else { throw ValidationError("order mode needs --limit ≥ 1") }
            guard unit == nil, length == nil else { throw ValidationError("--unit and --length are for chain mode") }
        }
        guard lifetime >= 1 else { throw ValidationError("--lifetime must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            let customer: Customer
            if FileManager.default.fileExists(atPath: location.wallet) {
                customer = try location.open()
                // Options given for another account would otherwise be ignored without a word.
                var differs: [String] = []
                if let bankID, bankID != customer.bankID { differs.append("bank \(customer.bankID), not \(bankID)") }
                if let account, account != customer.account { differs.append("account \(customer.account), not \(account)") }
                if key != nil || keyFile != nil, !customer.hasKey(try loadKey(hex: key, file: keyFile)) {
                    differs.append("another K_C than the one given")
                }
                guard differs.isEmpty else {
                    throw ToolError(.dataError, "\(location.wallet) holds \(differs.joined(separator: ", ")): --bank-id, "
                                    + "--account and --key-file only create a wallet; name another --wallet for another account")
                }
            } else {
                guard let bankID, let account else {
                    throw ToolError(.usage, "\(location.wallet) does not exist: give --bank-id, --account and --key-file to create it")
                }
                let accountKey = try loadKey(hex: key, file: keyFile)
                customer = try customerCall(location.wallet) { () throws(CustomerError) in
                    try Customer.create(walletPath: location.wallet, bankID: bankID, account: account, key: accountKey)
                }
                print("created wallet \(location.wallet) for account \(account) at bank \(bankID)")
            }
            let request = try customerCall { () throws(CustomerError) in
                switch mode {
                case .chain: try customer.requestChainTicket(merchant: merchant, unit: unit!, chainLength: length!, lifetime: lifetime)
                case .order: try customer.requestOrderTicket(merchant: merchant, limit: limit!, lifetime: lifetime)
                }
            }
            try writeOutput(out, request.bytes)
            print("wrote \(out): \(mode.rawValue) ticket request for merchant \(merchant), limit \(money(request.limit))")
        }
    }
}

struct CustomerAccept: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept",
        abstract: "Open the bank's Envelope and keep the ticket in the wallet.",
        discussion: """
            Checks the Envelope against the request it answers. Prints the ticket's
            serial (to pay with), mode, limit and expiry.

            Example:
              micropay customer accept --wallet alice.db --envelope env.bin --ticket ticket.bin
            """
    )

    @OptionGroup var location: WalletLocation
    @Option(help: ArgumentHelp("The Envelope from bank issue.", valueName: "file"))
    var envelope: String
    @Option(help: ArgumentHelp("The Ticket from bank issue.", valueName: "file"))
    var ticket: String

    func run() throws {
        try reportingErrors {
            let env = try readObject(envelope, as: "Envelope") { try Envelope(decoding: $0) }
            let tkt = try readObject(ticket, as: "Ticket") { try Ticket(decoding: $0) }
            let customer = try location.open()
            let held = try customerCall(envelope) { () throws(CustomerError) in try customer.accept(envelope: env, ticket: tkt) }
            let mode = held.mode == .chain ? "chain of \(held.chainLength) × \(held.unit)" : "orders"
            print("ticket \(held.serial) for merchant \(held.merchant): \(mode), limit \(money(held.limit)), expires \(held.expires)")
        }
    }
}

struct CustomerPay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pay",
        abstract: "Pay on a ticket: a ChainPayment (--units) or a PaymentOrder (--amount).",
        discussion: """
            Chain tickets: --units K reveals the word K units further (at most 4096
            at once, the merchant's gap rule). Order tickets: --amount A adds A
            micro-units, bound to --item (32 hex digits; default zero) or to the
            goods stream given with --goods.

            With --batch F the record is appended to batch file F (created if
            missing); the ticket itself goes in front of the first payment on it
            (or always, with --with-ticket). With --out F the payment alone is written
            to F. The output is opened before the wallet pays, so one that cannot be
            created costs nothing.

            --resend writes the ticket's last payment again, byte for byte, and pays
            nothing (with --batch, the ticket goes in front of it): for a payment the
            wallet made but that did not reach its file or the merchant. The merchant
            takes it as a duplicate if it had it already, with no second credit.

            Example:
              micropay customer pay --wallet alice.db --serial 1 --units 3 --batch day.mpb
              micropay customer pay --wallet alice.db --serial 2 --amount 2500 --goods song.mpg --batch day.mpb
              micropay customer pay --wallet alice.db --serial 1 --resend --batch day.mpb
            """
    )

    @OptionGroup var location: WalletLocation
    @Option(help: "The ticket's serial.")
    var serial: UInt64
    @Option(help: "Chain ticket: units to pay (1...4096).")
    var units: UInt32?
    @Option(help: "Order ticket: micro-units to pay.")
    var amount: UInt64?
    @Option(help: ArgumentHelp("Order ticket: the item the order buys (32 hex digits).", valueName: "hex"))
    var item: String?
    @Option(help: ArgumentHelp("Order ticket: the GoodsStream the order buys.", valueName: "file"))
    var goods: String?
    @Option(help: ArgumentHelp("Append the record to this batch file.", valueName: "file"))
    var batch: String?
    @Option(help: ArgumentHelp("Write the payment alone to this file.", valueName: "file"))
    var out: String?
    @Flag(name: .customLong("with-ticket"), help: "Put the ticket in the batch in front of this payment.")
    var withTicket = false
    @Flag(help: "Write the ticket's last payment again; pay nothing.")
    var resend = false

    func validate() throws {
        if resend {
            guard units == nil && amount == nil && item == nil && goods == nil else {
                throw ValidationError("--resend pays nothing: give none of --units, --amount, --item and --goods")
            }
        } else {
            guard (units == nil) != (amount == nil) else { throw ValidationError("give exactly one of --units (chain) and --amount (order)") }
        }
        if let units { guard (1...4096).contains(units) else { throw ValidationError("--units must be 1...4096") } }
        if units != nil, item != nil || goods != nil { throw ValidationError("--item and --goods are for orders") }
        if item != nil && goods != nil { throw ValidationError("give at most one of --item and --goods") }
        guard (batch == nil) != (out == nil) else { throw ValidationError("give exactly one of --batch and --out") }
        if withTicket && batch == nil { throw ValidationError("--with-ticket needs --batch") }
    }

    func run() throws {
        try reportingErrors {
            var itemDigest = Bytes16()
            if let item { itemDigest = try parseHex16(item, option: "--item") }
            if let goods { itemDigest = try readObject(goods, as: "GoodsStream") { try GoodsStream(decoding: $0) }.item }
            let customer = try location.open()
            let before = try customerCall { () throws(CustomerError) in try customer.ticket(serial: serial) }
            // Opened before the wallet moves: an output that cannot be made fails here, costing nothing.
            let appender = try batch.map { try BatchAppender(path: $0) }
            let output = try out.map { try StreamingOutput(path: $0) }
            let record: [UInt8]
            let what: String
            if resend {
                let stored = try customerCall { () throws(CustomerError) in try customer.lastPayment(serial: serial) }
                guard let last = stored else {
                    throw ToolError(.dataError, "ticket \(serial): no payment made yet, nothing to send again")
                }
                record = last
                what = "the last payment on ticket \(serial) again"
            } else if let units {
                let payment = try customerCall { () throws(CustomerError) in try customer.pay(serial: serial, units: units) }
                record = payment.encoded()
                what = "chain word \(payment.index) on ticket \(serial) (\(money(UInt64(units) * before.unit)))"
            } else {
                let order = try customerCall { () throws(CustomerError) in
                    try customer.payOrder(serial: serial, amount: amount!, item: itemDigest)
                }
                record = order.bytes
                what = "order \(order.seq) on ticket \(serial) (\(money(amount!)), \(money(order.cumulative)) in all)"
            }
            do {
                if let appender {
                    let sendTicket = withTicket || resend || (before.paidIndex == 0 && before.seq == 0)
                    try appender.append(sendTicket ? [before.ticket.bytes, record] : [record])
                    print("appended \(sendTicket ? "the ticket and " : "")\(what) to \(appender.path)")
                } else if let output {
                    record.withUnsafeBufferPointer { output.append($0) }
                    try output.commit()
                    print("wrote \(output.path): \(what)")
                }
            } catch let error as ToolError where !resend {
                // Paid, but not written: the wallet keeps the payment's bytes.
                let target = batch.map { "--batch \($0)" } ?? "--out \(out ?? "")"
                throw ToolError(error.kind, "\(error.message); the payment is made and kept in the wallet: "
                                + "`micropay customer pay --wallet \(location.wallet) --serial \(serial) --resend \(target)` writes it again")
            }
        }
    }
}

struct CustomerOpenGoods: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open-goods",
        abstract: "Decrypt goods with the merchant's KeyEnvelope.",
        discussion: """
            Checks that the key is for this stream and that the wallet paid for it,
            then decrypts and authenticates every chunk.

            Example:
              micropay customer open-goods --wallet alice.db --stream song.mpg --key-envelope song.key --out song.ogg
            """
    )

    @OptionGroup var location: WalletLocation
    @Option(help: ArgumentHelp("The GoodsStream.", valueName: "file"))
    var stream: String
    @Option(name: .customLong("key-envelope"), help: ArgumentHelp("The merchant's KeyEnvelope.", valueName: "file"))
    var keyEnvelope: String
    @Option(help: ArgumentHelp("Where to write the content.", valueName: "file"))
    var out: String

    func run() throws {
        try reportingErrors {
            let goods = try readObject(stream, as: "GoodsStream") { try GoodsStream(decoding: $0) }
            let key = try readObject(keyEnvelope, as: "KeyEnvelope") { try KeyEnvelope(decoding: $0) }
            let customer = try location.open()
            let content = try customerCall(stream) { () throws(CustomerError) in try customer.openGoods(goods, keyEnvelope: key) }
            try writeOutput(out, content)
            print("wrote \(out): \(content.count) bytes of item \(goods.item.hex)")
        }
    }
}
