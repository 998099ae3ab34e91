<?php
/*
 * The installer as Marketplace → Installed solutions runs it: DoInstall and DoUninstall end
 * in a step page (CMain::IncludeAdminFile), errors are shown there, a failed install leaves
 * nothing behind, and uninstall keeps the settings and the queue when asked to.
 */

use Bitrix\Main\Application;
use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\ModuleManager;
use Orderbridge\Config;
use Orderbridge\Queue;
use Orderbridge\QueueTable;
use Orderbridge\Relay;

final class InstallTest extends \Orderbridge\Tests\TestCase
{
	private const SERVICE_CODES = ['ROISTAT_VISIT', 'UTM_SOURCE', 'UTM_MEDIUM', 'UTM_CAMPAIGN', 'UTM_CONTENT', 'UTM_TERM'];

	private function shop(): \orderbridge_connector
	{
		\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Individual', 'LID' => 's1']);
		\Bitrix\Sale\Internals\PersonTypeTable::add(['NAME' => 'Legal entity', 'LID' => 's1']);
		return new \orderbridge_connector();
	}

	private function codesOfProperties(): array
	{
		$codes = array_column(self::rows(\Bitrix\Sale\Internals\OrderPropsTable::getList()), 'CODE');
		sort($codes);
		return $codes;
	}

	private static function rows($result): array
	{
		$rows = [];
		while ($row = $result->fetch()) {
			$rows[] = $row;
		}
		return $rows;
	}

	private function queueTableExists(): bool
	{
		return Application::getConnection()->isTableExists('b_orderbridge_queue');
	}

	/** Nothing of the module on the site: not registered, no handlers, agent, property, table or file. */
	private function assertNothingInstalled(): void
	{
		ok(!ModuleManager::isModuleInstalled('orderbridge.connector'), 'the module is not registered');
		eq([], EventManager::getInstance()->registered, 'no event handlers');
		eq([], \CAgent::$agents, 'no agent');
		eq([], $this->codesOfProperties(), 'no order property');
		ok(!$this->queueTableExists(), 'no queue table');
		ok(!file_exists($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge/status.php'), 'no entry point');
	}

	/** @testdox install without the sale module: the step page shows why, and nothing is installed */
	public function testInstallWithoutSaleShowsWhyAndInstallsNothing(): void
	{
		QueueTable::dropIfExists(); // a site that never had the module
		unset(ModuleManager::$installed['sale']);
		$page = run_install($this->shop());
		eq(['step.php', false], [$page['file'], $page['returned']], 'the step page ended the request');
		ok(strpos($page['html'], 'adm-info-message-red') !== false, 'an error message');
		ok(strpos($page['html'], 'orderbridge needs the &quot;sale&quot; (online store) module.') !== false,
			'naming the sale module: ' . $page['html']);
		$this->assertNothingInstalled();
	}

	/** @testdox install on a sale module older than MIN_SALE_VERSION: refused, naming both versions */
	public function testInstallOnATooOldSaleIsRefused(): void
	{
		QueueTable::dropIfExists();
		write_module_version('sale', '15.5.3');
		$page = run_install($this->shop());
		ok(strpos($page['html'], 'module 16.0.0 or later; this site has 15.5.3.') !== false, $page['html']);
		$this->assertNothingInstalled();
		write_module_version('sale', '16.0.0');
		eq(null, run_install($this->shop())['error'], 'exactly the minimum is enough');
	}

	/** @testdox a successful install registers the module, handlers, agent, queue table, properties and entry point */
	public function testASuccessfulInstallRegistersEverything(): void
	{
		QueueTable::dropIfExists();
		$page = run_install($this->shop());
		eq([null, 'step.php'], [$page['error'], $page['file']]);
		ok(strpos($page['html'], 'adm-info-message-green') !== false && strpos($page['html'], 'orderbridge is installed') !== false,
			'the step page says so');
		ok(ModuleManager::isModuleInstalled('orderbridge.connector'), 'registered');
		eq(6, count(EventManager::getInstance()->registered), 'five sale handlers and the admin block');
		eq([['\Orderbridge\Agent::resend();', 'orderbridge.connector', 60]], array_map(function ($a) {
			return [$a['name'], $a['module'], $a['interval']];
		}, \CAgent::$agents));
		ok($this->queueTableExists(), 'the queue table');
		eq(['ID', 'ORDER_ID', 'WEBHOOK_ID', 'BODY', 'CREATED_AT', 'NEXT_AT', 'ATTEMPTS', 'LAST_ERROR', 'STATE'],
			array_keys(Application::getConnection()->tables['b_orderbridge_queue']['fields']));
		eq(['ID'], Application::getConnection()->tables['b_orderbridge_queue']['primary']);
		foreach (self::SERVICE_CODES as $code) {
			$props = self::rows(\Bitrix\Sale\Internals\OrderPropsTable::getList(['filter' => ['=CODE' => $code]]));
			eq(['1', '2'], array_map('strval', array_column($props, 'PERSON_TYPE_ID')), $code . ' for each person type');
			eq([['Y', 'N', 'TEXT'], ['Y', 'N', 'TEXT']], array_map(function ($p) {
				return [$p['UTIL'], $p['REQUIED'], $p['TYPE']];
			}, $props), $code . ': a service text property, not required');
		}
		ok(is_file($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge/status.php'), 'the entry point');
	}

	/** @testdox a second install adds no second property, handler or agent */
	public function testASecondInstallAddsNoDuplicates(): void
	{
		$module = $this->shop();
		run_install($module);
		$before = [$this->codesOfProperties(), EventManager::getInstance()->registered, \CAgent::$agents];
		eq(null, run_install($module)['error']);
		eq($before, [$this->codesOfProperties(), EventManager::getInstance()->registered, \CAgent::$agents]);
		eq(2 * (count(self::SERVICE_CODES) + 1), count($this->codesOfProperties()), 'six service properties and B24_DEAL_ID, twice');
	}

	/** @testdox an install that fails half-way undoes what it did, registers nothing, and shows the reason */
	public function testAnInstallThatFailsHalfWayIsUndone(): void
	{
		QueueTable::dropIfExists();
		mkdir($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools', 0777, true);
		touch($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge'); // a file where its folder must go
		$page = run_install($this->shop());
		ok(strpos($page['html'], 'The install was undone: cannot create the folder') !== false, $page['html']);
		ok(!ModuleManager::isModuleInstalled('orderbridge.connector'), 'not registered');
		eq([], EventManager::getInstance()->registered, 'handlers removed again');
		eq([], \CAgent::$agents, 'agent removed again');
		eq([], $this->codesOfProperties(), 'the properties it had created are gone');
		ok(!$this->queueTableExists(), 'the table it had created is gone');
	}

	/** @testdox a failed install keeps what an earlier uninstall kept: the queue, the settings, old properties */
	public function testAFailedInstallKeepsWhatWasThereBefore(): void
	{
		configure();
		(new Queue())->put(Relay::newId(), '5', '{}', 100);
		$module = $this->shop();
		\CSaleOrderProps::Add(['PERSON_TYPE_ID' => 1, 'NAME' => 'Roistat visit', 'TYPE' => 'TEXT', 'PROPS_GROUP_ID' => 1,
			'CODE' => 'ROISTAT_VISIT']);
		mkdir($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools', 0777, true);
		touch($_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge');
		ok(run_install($module)['error'] !== null, 'the install failed');
		eq(1, (new Queue())->count(), 'the kept queue is still there');
		eq('shop.example.ru', Option::get(Config::MODULE_ID, 'site_id'), 'and the settings');
		eq(['ROISTAT_VISIT'], $this->codesOfProperties(), 'and the property that was there before');
	}

	/** @testdox uninstall step 1 asks whether to keep the settings and the queue, and changes nothing */
	public function testUninstallStep1AsksAndChangesNothing(): void
	{
		$module = $this->shop();
		run_install($module);
		(new Queue())->put(Relay::newId(), '5', '{}', 100);
		$page = admin_step([$module, 'DoUninstall'], ['uninstall' => 'Y']);
		eq('unstep1.php', $page['file']);
		ok(strpos($page['html'], 'name="savedata" id="savedata" value="Y" checked') !== false, 'the keep box, ticked');
		ok(strpos($page['html'], 'name="step" value="2"') !== false && strpos($page['html'], bitrix_sessid()) !== false,
			'the form goes to step 2 with the session token');
		ok(strpos($page['html'], '1 snapshots still wait in the queue') !== false, 'the queue is not empty: ' . $page['html']);
		ok(ModuleManager::isModuleInstalled('orderbridge.connector'), 'still installed');
		eq(6, count(EventManager::getInstance()->registered));
	}

	/** @testdox uninstall keeping the data: the settings and the queued rows stay, and a new install uses them */
	public function testUninstallKeepingTheDataKeepsSettingsAndQueue(): void
	{
		configure();
		$module = $this->shop();
		run_install($module);
		(new Queue())->put(Relay::newId(), '5', '{}', 100);
		$page = run_uninstall($module, true);
		eq(['unstep2.php', null], [$page['file'], $page['error']]);
		ok(strpos($page['html'], 'orderbridge is uninstalled') !== false, $page['html']);
		ok(!ModuleManager::isModuleInstalled('orderbridge.connector'), 'unregistered');
		eq([[], []], [EventManager::getInstance()->registered, \CAgent::$agents], 'handlers and agent gone');
		eq('shop.example.ru', Option::get(Config::MODULE_ID, 'site_id'), 'settings kept');
		eq(['5'], array_column((new Queue())->due(100, 10), 'ORDER_ID'), 'queued rows kept');
		eq(null, run_install($module)['error']);
		eq(['5'], array_column((new Queue())->due(100, 10), 'ORDER_ID'), 'and still there after a new install');
	}

	/** @testdox uninstall without keeping: the settings and the queue table go; the visit and UTM properties stay */
	public function testUninstallWithoutKeepingRemovesSettingsAndQueue(): void
	{
		configure();
		$module = $this->shop();
		run_install($module);
		(new Queue())->put(Relay::newId(), '5', '{}', 100);
		eq(null, run_uninstall($module, false)['error']);
		eq([], Option::$values[Config::MODULE_ID] ?? [], 'settings removed');
		ok(!$this->queueTableExists(), 'the queue table is dropped');
		$codes = array_values(array_unique($this->codesOfProperties()));
		eq(['ROISTAT_VISIT', 'UTM_CAMPAIGN', 'UTM_CONTENT', 'UTM_MEDIUM', 'UTM_SOURCE', 'UTM_TERM'], $codes,
			'B24_DEAL_ID goes; the properties that hold order data stay');
	}
}
