<?php
/*
 * Prints "N passed, M failed" from a PHPUnit JUnit report (phpunit --log-junit FILE):
 * every test that failed, erred, was skipped or warned counts as failed. Exit 1 when the
 * report is missing or unreadable (then the caller counts one failure).
 *   php junit_count.php FILE
 */
$x = @simplexml_load_file($argv[1] ?? '');
if (!$x || !isset($x->testsuite)) {
	fwrite(STDERR, "no readable JUnit report at " . ($argv[1] ?? '(none)') . "\n");
	exit(1);
}
$a = $x->testsuite->attributes();
$tests = (int)$a->tests;
$bad = min($tests, (int)$a->failures + (int)$a->errors + (int)$a->skipped + (int)($a->warnings ?? 0));
echo $tests - $bad, ' passed, ', $bad, " failed\n";
