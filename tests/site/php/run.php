<?php
/*
 * A plain test runner for the orderbridge Bitrix module under php-cli.
 *   php tests/site/php/run.php [filter]
 * Loads the Bitrix stand-ins (stubs.php) and the module through its own include.php, then
 * every *_test.php here. A test is test('states the behaviour', fn); each runs with fresh
 * options, event registrations, orders, spool and log. Prints one "ok"/"not ok" line per
 * test and ends with "N passed, M failed"; exit code 1 when anything failed.
 */

error_reporting(E_ALL);
ini_set('display_errors', 'stderr');
set_error_handler(function ($severity, $message, $file, $line) {
	if (error_reporting() & $severity) {
		throw new ErrorException($message, 0, $severity, $file, $line);
	}
	return false;
});
date_default_timezone_set('Europe/Moscow');

define('REPO', dirname(__DIR__, 3));
define('MODULE_DIR', REPO . '/site/bitrix/orderbridge.connector');

require __DIR__ . '/stubs.php';
\Bitrix\Main\Loader::$moduleDirs['orderbridge.connector'] = MODULE_DIR;
require MODULE_DIR . '/include.php';
require MODULE_DIR . '/install/index.php';
require __DIR__ . '/helpers.php';

$tests = [];
function test(string $name, callable $fn): void
{
	global $tests;
	$tests[] = [$name, $fn];
}

foreach (glob(__DIR__ . '/*_test.php') as $file) {
	require $file;
}

$filter = $argv[1] ?? '';
$passed = 0;
$failed = 0;
foreach ($tests as [$name, $fn]) {
	if ($filter !== '' && stripos($name, $filter) === false) {
		continue;
	}
	fresh_state();
	try {
		$fn();
		$passed++;
		echo 'ok ', $passed + $failed, ' - ', $name, "\n";
	} catch (\Throwable $e) {
		$failed++;
		echo 'not ok ', $passed + $failed, ' - ', $name, "\n";
		echo '  # ', get_class($e), ': ', str_replace("\n", "\n  # ", $e->getMessage()), "\n";
		echo '  # at ', $e->getFile(), ':', $e->getLine(), "\n";
	} finally {
		cleanup_state();
	}
}
echo $passed, ' passed, ', $failed, " failed\n";
exit($failed === 0 && $passed > 0 ? 0 : 1);
