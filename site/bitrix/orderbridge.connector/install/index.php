<?php
/*
 * Installs and uninstalls the module (Marketplace → Installed solutions → orderbridge), as
 * step pages: DoInstall and DoUninstall end with $APPLICATION->IncludeAdminFile(), which shows
 * install/step.php (or unstep1.php, the question, and unstep2.php) and ends the request.
 * Install needs the sale module, at least MIN_SALE_VERSION. It creates the queue table
 * b_orderbridge_queue, the service order properties ROISTAT_VISIT, UTM_* and B24_DEAL_ID for
 * every person type that lacks them, the queue agent (every 60 s), the sale event handlers
 * (EVENTS), the admin order page's block (ADMIN_EVENTS) and the entry points in
 * /bitrix/tools/orderbridge/; the module is registered last. Invariants:
 * - an install that fails half-way undoes what it did and registers nothing; the reason is
 *   shown on the step page (ThrowException → GetException → CAdminMessage);
 * - installing again adds nothing twice, and keeps the queue and settings an earlier
 *   uninstall kept;
 * - uninstall keeps ROISTAT_VISIT and UTM_* (they hold order data); B24_DEAL_ID goes
 *   (CSaleOrderProps::Delete keeps the orders' values, detached). The settings and the queue
 *   table go too, unless the admin ticked "keep" (savedata=Y) on unstep1.php.
 */

use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Bitrix\Main\ModuleManager;

Loc::loadMessages(__FILE__);

class orderbridge_connector extends CModule
{
	/** Event of the sale module => method of \Orderbridge\EventHandlers; one list for both ways. */
	public const EVENTS = [
		'OnSaleOrderBeforeSaved' => 'onOrderBeforeSaved',
		'OnSaleOrderSaved' => 'onOrderSaved',
		'OnSaleStatusOrderChange' => 'onStatusChange',
		'OnSaleOrderPaid' => 'onPaid',
		'OnSaleOrderCanceled' => 'onCanceled',
	];
	public const HANDLER_CLASS = '\Orderbridge\EventHandlers';
	/**
	 * Events of the main module => [class, method]. sale/admin/order_view.php builds
	 * CAdminDraggableBlockEngine('OnAdminSaleOrderViewDraggable', ['ORDER' => $order]), which
	 * calls the handlers of main's event of that name (main/interface/admin_tabcontrol_drag.php).
	 */
	public const ADMIN_EVENTS = [
		'OnAdminSaleOrderViewDraggable' => ['\Orderbridge\AdminOrderBlock', 'onInit'],
	];
	public const AGENT = '\Orderbridge\Agent::resend();';
	public const VISIT_PROPERTY = 'ROISTAT_VISIT';
	public const DEAL_PROPERTY = 'B24_DEAL_ID';
	/** Service properties for the visit's UTM tags, filled by the module; code => English name. */
	public const UTM_PROPERTIES = [
		'UTM_SOURCE' => 'UTM source',
		'UTM_MEDIUM' => 'UTM medium',
		'UTM_CAMPAIGN' => 'UTM campaign',
		'UTM_CONTENT' => 'UTM content',
		'UTM_TERM' => 'UTM term',
	];
	/** The oldest sale module the module is installed on (the D7 order events and API). */
	public const MIN_SALE_VERSION = '16.0.0';

	public $MODULE_ID = 'orderbridge.connector';
	public $MODULE_VERSION;
	public $MODULE_VERSION_DATE;
	public $MODULE_NAME;
	public $MODULE_DESCRIPTION;
	public $PARTNER_NAME;

	/** What this install run created, so that a failure can undo exactly that. */
	private $created = ['table' => false, 'properties' => []];

	public function __construct()
	{
		$arModuleVersion = [];
		include __DIR__ . '/version.php';
		$this->MODULE_VERSION = $arModuleVersion['VERSION'];
		$this->MODULE_VERSION_DATE = $arModuleVersion['VERSION_DATE'];
		$this->MODULE_NAME = Loc::getMessage('ORDERBRIDGE_MODULE_NAME');
		$this->MODULE_DESCRIPTION = Loc::getMessage('ORDERBRIDGE_MODULE_DESCRIPTION');
		$this->PARTNER_NAME = 'orderbridge';
	}

	/**
	 * Installs, or shows why not. Bitrix calls this from partner_modules.php after checking the
	 * session token; IncludeAdminFile() ends the request, so nothing runs after it there.
	 */
	public function DoInstall()
	{
		global $APPLICATION;
		$APPLICATION->ResetException();
		$error = $this->requirementsError();
		if ($error === null) {
			try {
				$this->installAll();
			} catch (\Throwable $e) {
				$this->rollBack();
				$error = Loc::getMessage('ORDERBRIDGE_INSTALL_FAILED', ['#ERROR#' => $e->getMessage()]);
			}
		}
		if ($error !== null) {
			$APPLICATION->ThrowException($error);
		}
		$APPLICATION->IncludeAdminFile(Loc::getMessage('ORDERBRIDGE_INSTALL_TITLE'), __DIR__ . '/step.php');
		return $error === null;
	}

	/**
	 * Step 1 (no step=2 in the request) asks whether to keep the settings and the queue;
	 * step 2 uninstalls, keeping them when savedata=Y, and shows the outcome.
	 */
	public function DoUninstall()
	{
		global $APPLICATION;
		$title = Loc::getMessage('ORDERBRIDGE_UNINSTALL_TITLE');
		if ((int)($_REQUEST['step'] ?? 1) < 2) {
			$APPLICATION->IncludeAdminFile($title, __DIR__ . '/unstep1.php');
			return false;
		}
		$APPLICATION->ResetException();
		$ok = true;
		try {
			$this->UnInstallFiles();
			$this->UnInstallEvents();
			$this->UnInstallDB(['savedata' => ($_REQUEST['savedata'] ?? '') === 'Y' ? 'Y' : 'N']);
			ModuleManager::unRegisterModule($this->MODULE_ID);
		} catch (\Throwable $e) {
			$ok = false;
			$APPLICATION->ThrowException(Loc::getMessage('ORDERBRIDGE_UNINSTALL_FAILED', ['#ERROR#' => $e->getMessage()]));
		}
		$APPLICATION->IncludeAdminFile($title, __DIR__ . '/unstep2.php');
		return $ok;
	}

	/** Why the module cannot be installed here, or null. */
	private function requirementsError(): ?string
	{
		if (!ModuleManager::isModuleInstalled('sale')) {
			return Loc::getMessage('ORDERBRIDGE_NEED_SALE');
		}
		$version = $this->saleVersion();
		if ($version === '' || version_compare($version, self::MIN_SALE_VERSION, '<')) {
			return Loc::getMessage('ORDERBRIDGE_SALE_TOO_OLD', [
				'#VERSION#' => $version !== '' ? $version : '?',
				'#MIN#' => self::MIN_SALE_VERSION,
			]);
		}
		return null;
	}

	/**
	 * The installed sale module's version: ModuleManager::getVersion('sale'), which reads
	 * $arModuleVersion['VERSION'] from the module's install/version.php, local/ first
	 * (main/lib/modulemanager.php, getLocalPath). Read the same way where it is missing.
	 */
	private function saleVersion(): string
	{
		if (method_exists(ModuleManager::class, 'getVersion')) {
			return (string)ModuleManager::getVersion('sale');
		}
		foreach (['/local/modules', '/bitrix/modules'] as $dir) {
			$file = $_SERVER['DOCUMENT_ROOT'] . $dir . '/sale/install/version.php';
			if (is_file($file)) {
				$arModuleVersion = [];
				include $file;
				return (string)($arModuleVersion['VERSION'] ?? '');
			}
		}
		return '';
	}

	/** Every part, the registration last: a module is listed as installed only when whole. */
	private function installAll(): void
	{
		$this->created = ['table' => false, 'properties' => []];
		$this->InstallDB();
		$this->InstallEvents();
		$this->InstallFiles();
		ModuleManager::registerModule($this->MODULE_ID);
	}

	/** Undoes a failed installAll(): only what this run created; a kept queue or settings stay. */
	private function rollBack(): void
	{
		$steps = [
			function () {
				$this->UnInstallFiles();
			},
			function () {
				$this->UnInstallEvents();
			},
			function () {
				\CAgent::RemoveModuleAgents($this->MODULE_ID);
			},
			function () {
				foreach ($this->created['properties'] as $id) {
					\CSaleOrderProps::Delete($id);
				}
			},
			function () {
				if ($this->created['table']) {
					\Orderbridge\QueueTable::dropIfExists();
				}
			},
		];
		foreach ($steps as $step) {
			try {
				$step();
			} catch (\Throwable $e) {
				// Undo as much as possible; the install's own error is the one shown.
			}
		}
		$this->created = ['table' => false, 'properties' => []];
	}

	/** Idempotent: a handler already registered (an earlier, broken install) is not added twice. */
	public function InstallEvents()
	{
		$this->UnInstallEvents();
		$events = EventManager::getInstance();
		foreach (self::EVENTS as $event => $method) {
			// registerEventHandler (not ...Compatible): handlers get a D7 \Bitrix\Main\Event.
			$events->registerEventHandler('sale', $event, $this->MODULE_ID, self::HANDLER_CLASS, $method);
		}
		foreach (self::ADMIN_EVENTS as $event => [$class, $method]) {
			$events->registerEventHandler('main', $event, $this->MODULE_ID, $class, $method);
		}
		return true;
	}

	public function UnInstallEvents()
	{
		$events = EventManager::getInstance();
		foreach (self::EVENTS as $event => $method) {
			$events->unRegisterEventHandler('sale', $event, $this->MODULE_ID, self::HANDLER_CLASS, $method);
		}
		foreach (self::ADMIN_EVENTS as $event => [$class, $method]) {
			$events->unRegisterEventHandler('main', $event, $this->MODULE_ID, $class, $method);
		}
		return true;
	}

	public function InstallDB($arParams = [])
	{
		$this->createQueueTable();
		\CAgent::RemoveModuleAgents($this->MODULE_ID); // a reinstall must not leave two
		\CAgent::AddAgent(self::AGENT, $this->MODULE_ID, 'N', 60);
		if (Loader::includeModule('sale')) {
			$this->createVisitProperties();
			$this->createDealProperties();
		}
		return true;
	}

	/** $arParams['savedata'] = 'Y' keeps the settings and the queue table (unstep1.php's box). */
	public function UnInstallDB($arParams = [])
	{
		\CAgent::RemoveModuleAgents($this->MODULE_ID);
		if (Loader::includeModule('sale')) {
			$this->removeDealProperties();
		}
		if (($arParams['savedata'] ?? 'N') !== 'Y') {
			$this->loadQueueTable();
			\Orderbridge\QueueTable::dropIfExists();
			Option::delete($this->MODULE_ID);
		}
		return true;
	}

	/**
	 * The queue table, from QueueTable::getMap() (Entity::createDbTable, as D7 modules create
	 * their tables), unless an earlier uninstall kept it.
	 */
	private function createQueueTable(): void
	{
		$this->loadQueueTable();
		if (!\Bitrix\Main\Application::getConnection()->isTableExists(\Orderbridge\QueueTable::getTableName())) {
			\Orderbridge\QueueTable::createIfMissing();
			$this->created['table'] = true;
		}
	}

	/** The module is not registered yet while installing, so its autoloader is not either. */
	private function loadQueueTable(): void
	{
		if (!class_exists('\Orderbridge\QueueTable')) {
			require_once dirname(__DIR__) . '/lib/QueueTable.php';
		}
	}

	public function InstallFiles()
	{
		$dir = $_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge';
		if (!is_dir($dir) && !@mkdir($dir, 0755, true) && !is_dir($dir)) {
			throw new \RuntimeException('cannot create the folder ' . $dir);
		}
		// A proxy rather than a copy: the code stays in the module folder and updates with it.
		// The path is kept relative to the document root, so that moving the site keeps it.
		$target = realpath(__DIR__ . '/../tools/status.php');
		$root = realpath($_SERVER['DOCUMENT_ROOT']);
		$require = strpos($target, $root . '/') === 0
			? "\$_SERVER['DOCUMENT_ROOT'] . " . var_export(substr($target, strlen($root)), true)
			: var_export($target, true);
		$written = @file_put_contents($dir . '/status.php',
			"<?php\n// Installed by the orderbridge module: the status endpoint for two-way sync.\n"
			. 'require ' . $require . ";\n");
		if ($written === false) {
			throw new \RuntimeException('cannot write ' . $dir . '/status.php');
		}
		return true;
	}

	public function UnInstallFiles()
	{
		$dir = $_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge';
		@unlink($dir . '/status.php');
		@rmdir($dir);
		return true;
	}

	/**
	 * ROISTAT_VISIT and UTM_* for each person type: service properties (UTIL), so that the
	 * buyer never sees them in the checkout form, while managers see them in the order.
	 */
	private function createVisitProperties()
	{
		$names = [self::VISIT_PROPERTY => Loc::getMessage('ORDERBRIDGE_VISIT_PROPERTY_NAME') ?: 'Roistat visit'];
		foreach (self::UTM_PROPERTIES as $code => $english) {
			$names[$code] = Loc::getMessage('ORDERBRIDGE_PROPERTY_' . $code) ?: $english;
		}
		$sort = 10000;
		foreach ($names as $code => $name) {
			foreach ($this->personTypesWithout($code) as $typeId) {
				$this->addServiceProperty($typeId, $code, $name, $sort);
			}
			$sort++;
		}
	}

	/** One text property through the old API (sale/general/order_props.php); false is a failure. */
	private function addServiceProperty(int $typeId, string $code, string $name, int $sort): void
	{
		$id = \CSaleOrderProps::Add([
			'PERSON_TYPE_ID' => $typeId,
			'NAME' => $name,
			'TYPE' => 'TEXT',
			'REQUIED' => 'N', // sic: the old API's spelling
			'DEFAULT_VALUE' => '',
			'SORT' => $sort,
			'USER_PROPS' => 'N',
			'IS_LOCATION' => 'N',
			'PROPS_GROUP_ID' => $this->propertyGroup($typeId),
			'IS_EMAIL' => 'N',
			'IS_PROFILE_NAME' => 'N',
			'IS_PAYER' => 'N',
			'IS_LOCATION4TAX' => 'N',
			'IS_ZIP' => 'N',
			'IS_PHONE' => 'N',
			'IS_FILTERED' => 'Y',
			'CODE' => $code,
			'ACTIVE' => 'Y',
			'UTIL' => 'Y',
			'MULTIPLE' => 'N',
		]);
		if (!$id) {
			throw new \RuntimeException('cannot create the order property ' . $code . ' for person type ' . $typeId);
		}
		$this->created['properties'][] = (int)$id;
	}

	/**
	 * B24_DEAL_ID for each person type: the order's Bitrix24 deal id, written by the status
	 * endpoint. A service property (UTIL), not required, never shown to the buyer. Created
	 * through the D7 table: sale/lib/internals/orderprops.php requires PERSON_TYPE_ID, NAME,
	 * TYPE (STRING is the D7 name of a text field) and PROPS_GROUP_ID, and ENTITY_TYPE ORDER
	 * (its default) makes it an order's property, not a shipment's; the other fields are
	 * those CSaleOrderProps::Add fills in (sale/general/order_props.php).
	 */
	private function createDealProperties()
	{
		foreach ($this->personTypesWithout(self::DEAL_PROPERTY) as $typeId) {
			$added = \Bitrix\Sale\Internals\OrderPropsTable::add([
				'PERSON_TYPE_ID' => $typeId,
				'NAME' => Loc::getMessage('ORDERBRIDGE_DEAL_PROPERTY_NAME') ?: 'Bitrix24 deal',
				'TYPE' => 'STRING',
				'REQUIRED' => 'N',
				'DEFAULT_VALUE' => '',
				'SORT' => 10010,
				'USER_PROPS' => 'N',
				'IS_LOCATION' => 'N',
				'PROPS_GROUP_ID' => $this->propertyGroup($typeId),
				'DESCRIPTION' => '',
				'IS_EMAIL' => 'N',
				'IS_PROFILE_NAME' => 'N',
				'IS_PAYER' => 'N',
				'IS_LOCATION4TAX' => 'N',
				'IS_FILTERED' => 'Y',
				'CODE' => self::DEAL_PROPERTY,
				'IS_ZIP' => 'N',
				'IS_PHONE' => 'N',
				'IS_ADDRESS' => 'N',
				'ACTIVE' => 'Y',
				'UTIL' => 'Y',
				'MULTIPLE' => 'N',
				'SETTINGS' => [],
				'ENTITY_REGISTRY_TYPE' => 'ORDER',
				'ENTITY_TYPE' => 'ORDER',
			]);
			if (!$added->isSuccess()) {
				// Loud on purpose: without the property the status endpoint refuses every deal id.
				throw new \RuntimeException('cannot create the order property ' . self::DEAL_PROPERTY
					. ' for person type ' . $typeId . ': ' . implode('; ', $added->getErrorMessages()));
			}
			$this->created['properties'][] = (int)$added->getId();
		}
	}

	/** CSaleOrderProps::Delete also drops the property's relations and detaches its values. */
	private function removeDealProperties()
	{
		$props = \Bitrix\Sale\Internals\OrderPropsTable::getList([
			'select' => ['ID'],
			'filter' => ['=CODE' => self::DEAL_PROPERTY],
		]);
		$ids = [];
		while ($prop = $props->fetch()) {
			$ids[] = (int)$prop['ID'];
		}
		foreach ($ids as $id) {
			\CSaleOrderProps::Delete($id);
		}
	}

	/** @return int[] the person types of the shop that have no order property with this code */
	private function personTypesWithout(string $code): array
	{
		$without = [];
		$types = \Bitrix\Sale\Internals\PersonTypeTable::getList(['select' => ['ID']]);
		while ($type = $types->fetch()) {
			$typeId = (int)$type['ID'];
			$exists = \Bitrix\Sale\Internals\OrderPropsTable::getList([
				'select' => ['ID'],
				'filter' => ['=PERSON_TYPE_ID' => $typeId, '=CODE' => $code],
			])->fetch();
			if (!$exists) {
				$without[] = $typeId;
			}
		}
		return $without;
	}

	/** A property needs a group of its person type: the first one, or a new one. */
	private function propertyGroup(int $typeId): int
	{
		$group = \Bitrix\Sale\Internals\OrderPropsGroupTable::getList([
			'select' => ['ID'],
			'filter' => ['=PERSON_TYPE_ID' => $typeId],
			'order' => ['SORT' => 'ASC'],
			'limit' => 1,
		])->fetch();
		if ($group) {
			return (int)$group['ID'];
		}
		$added = \Bitrix\Sale\Internals\OrderPropsGroupTable::add([
			'PERSON_TYPE_ID' => $typeId,
			'NAME' => 'orderbridge',
			'SORT' => 1000,
		]);
		return (int)$added->getId();
	}
}
