func runBankHarness(_ arguments: [String]) -> Int32 { 2 }
