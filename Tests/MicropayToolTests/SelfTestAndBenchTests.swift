import Foundation
import Testing

@Suite("selftest and bench")
struct SelfTestAndBenchTests {
    @Test("selftest passes every check, names the kernel, exits 0")
    func selftest() throws {
        let run = try micropay(["selftest"], in: temporaryDirectory())
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("SHA-256 kernel: "))
        #expect(!run.stdout.contains("FAIL"))
        let last = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasSuffix("passed, 0 failed"), "\(last)")
    }

    @Test("bench --json: every kernel, the four batches beside the naive baseline, both sweeps")
    func bench() throws {
        let run = try micropay(["bench", "--json", "--scale", "0.002", "--runs", "1"], in: temporaryDirectory())
        #expect(run.status == 0, "\(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let kernels = try #require(object["kernels"] as? [[String: Any]])
        #expect(kernels.map { $0["kernel"] as? String }.contains("portable"))
        for kernel in kernels {
            #expect((kernel["chain_steps_per_second"] as? Double ?? 0) > 0)
            #expect((kernel["order_tags_per_second"] as? Double ?? 0) > 0)
        }
        // The tool refuses to print a ratio when the baseline disagrees, so
        // four rows mean four batches on which both gave the same result.
        let rows = try #require(object["end_to_end"] as? [[String: Any]])
        #expect(rows.count == 4)
        for row in rows {
            #expect((row["records"] as? Int ?? 0) > 0)
            #expect((row["naive_records_per_second"] as? Double ?? 0) > 0)
        }
        #expect((object["threads"] as? [Any])?.isEmpty == false)
        #expect((object["live_tickets"] as? [Any])?.isEmpty == false)
        #expect(object["schema"] as? String == "micropay-throughput/1")
    }
}
