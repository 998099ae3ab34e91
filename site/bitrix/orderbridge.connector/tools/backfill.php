<?php
/*
 * Sends the shop's existing orders to orderbridge (Orderbridge\Backfill), from the shell:
 *   php bitrix/modules/orderbridge.connector/tools/backfill.php --since 2026-01-01 [--until DATE] [--rate N] [--resume]
 * (or local/modules/...). Run it as the web server's user. It finds the site's document root
 * from its own path, starts Bitrix's prolog without statistics, permission checks or agents,
 * and exits 0 when done, 1 on a bad argument, 2 when it had to stop (then --resume goes on).
 * Only the bootstrap is here; the tests run Backfill::main with stand-ins.
 */

/**
 * The document root of a module tool: <root>/{bitrix,local}/modules/<module>/tools.
 * Null when $toolsDir is not in such a place.
 */
function orderbridge_backfill_document_root(string $toolsDir): ?string
{
	$module = dirname($toolsDir);
	$modules = dirname($module);
	$top = dirname($modules);
	if (basename($toolsDir) !== 'tools' || basename($modules) !== 'modules'
		|| !in_array(basename($top), ['bitrix', 'local'], true)) {
		return null;
	}
	return dirname($top);
}

/** Bitrix under CLI: the constants first, then main's prolog, then the modules. */
function orderbridge_backfill_bootstrap(string $toolsDir): void
{
	if (PHP_SAPI !== 'cli') {
		http_response_code(403);
		exit(1);
	}
	$root = orderbridge_backfill_document_root($toolsDir);
	$prolog = $root === null ? '' : $root . '/bitrix/modules/main/include/prolog_before.php';
	if ($prolog === '' || !is_file($prolog)) {
		fwrite(STDERR, "backfill: cannot find bitrix/modules/main/include/prolog_before.php above " . $toolsDir . "\n");
		exit(1);
	}
	$_SERVER['DOCUMENT_ROOT'] = $root;
	define('NO_KEEP_STATISTIC', true);
	define('NOT_CHECK_PERMISSIONS', true);
	define('NO_AGENT_CHECK', true); // the agents keep running where they run; not in this process
	define('BX_NO_ACCELERATOR_RESET', true);
	require $prolog;
	if (!\Bitrix\Main\Loader::includeModule('sale') || !\Bitrix\Main\Loader::includeModule('orderbridge.connector')) {
		fwrite(STDERR, "backfill: the sale and orderbridge.connector modules must be installed\n");
		exit(1);
	}
	@set_time_limit(0);
}

if (PHP_SAPI === 'cli' && isset($argv[0]) && realpath($argv[0]) === __FILE__) {
	orderbridge_backfill_bootstrap(__DIR__);
	exit(\Orderbridge\Backfill::main($argv));
}
