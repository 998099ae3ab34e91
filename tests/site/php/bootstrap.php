<?php
/*
 * PHPUnit's bootstrap for the orderbridge Bitrix module (tests/site/phpunit.xml):
 * the Bitrix stand-ins (stubs.php), the module through its own include.php and installer,
 * and the shared helpers. Each test case extends Orderbridge\Tests\TestCase, which gives
 * every test fresh options, event registrations, orders, queue and log.
 */

namespace Orderbridge\Tests;

error_reporting(E_ALL);
date_default_timezone_set('Europe/Moscow');

\define('REPO', \dirname(__DIR__, 3));
\define('MODULE_DIR', \REPO . '/site/bitrix/orderbridge.connector');

require __DIR__ . '/stubs.php';
require __DIR__ . '/stubs_orm.php';
\Bitrix\Main\Loader::$moduleDirs['orderbridge.connector'] = \MODULE_DIR;
require \MODULE_DIR . '/include.php';
require \MODULE_DIR . '/install/index.php';
require __DIR__ . '/helpers.php';
require __DIR__ . '/helpers_site.php';

abstract class TestCase extends \PHPUnit\Framework\TestCase
{
	protected function setUp(): void
	{
		\fresh_state();
	}

	protected function tearDown(): void
	{
		\cleanup_state();
	}
}
