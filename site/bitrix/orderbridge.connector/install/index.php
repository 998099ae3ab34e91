<?php
/*
 * Installs and uninstalls the module (Marketplace → Installed solutions → orderbridge).
 * Install: registers the sale event handlers (EVENTS), the admin order page's block
 * (ADMIN_EVENTS), the spool agent (every 60 s), the service order properties ROISTAT_VISIT
 * and B24_DEAL_ID for every person type that lacks them, and the
 * /bitrix/tools/orderbridge/status.php entry point. Installing again adds nothing twice.
 * Uninstall removes all of that except ROISTAT_VISIT (it holds the order's visit) and the
 * spool directory (it may still hold orders orderbridge has not received). B24_DEAL_ID goes:
 * CSaleOrderProps::Delete keeps the orders' values, detached, and Bitrix24 keeps the link
 * from each deal to its order.
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

	public $MODULE_ID = 'orderbridge.connector';
	public $MODULE_VERSION;
	public $MODULE_VERSION_DATE;
	public $MODULE_NAME;
	public $MODULE_DESCRIPTION;
	public $PARTNER_NAME;

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

	public function DoInstall()
	{
		global $APPLICATION;
		if (!ModuleManager::isModuleInstalled('sale')) {
			$APPLICATION->ThrowException(Loc::getMessage('ORDERBRIDGE_NEED_SALE'));
			return false;
		}
		ModuleManager::registerModule($this->MODULE_ID);
		$this->InstallEvents();
		$this->InstallDB();
		$this->InstallFiles();
		return true;
	}

	public function DoUninstall()
	{
		$this->UnInstallFiles();
		$this->UnInstallDB();
		$this->UnInstallEvents();
		ModuleManager::unRegisterModule($this->MODULE_ID);
		return true;
	}

	public function InstallEvents()
	{
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

	public function InstallDB()
	{
		\CAgent::RemoveModuleAgents($this->MODULE_ID); // a reinstall must not leave two
		\CAgent::AddAgent(self::AGENT, $this->MODULE_ID, 'N', 60);
		if (Loader::includeModule('sale')) {
			$this->createVisitProperties();
			$this->createDealProperties();
		}
		return true;
	}

	public function UnInstallDB()
	{
		\CAgent::RemoveModuleAgents($this->MODULE_ID);
		if (Loader::includeModule('sale')) {
			$this->removeDealProperties();
		}
		Option::delete($this->MODULE_ID);
		return true;
	}

	public function InstallFiles()
	{
		$dir = $_SERVER['DOCUMENT_ROOT'] . '/bitrix/tools/orderbridge';
		if (!is_dir($dir)) {
			mkdir($dir, 0755, true);
		}
		// A proxy rather than a copy: the code stays in the module folder and updates with it.
		// The path is kept relative to the document root, so that moving the site keeps it.
		$target = realpath(__DIR__ . '/../tools/status.php');
		$root = realpath($_SERVER['DOCUMENT_ROOT']);
		$require = strpos($target, $root . '/') === 0
			? "\$_SERVER['DOCUMENT_ROOT'] . " . var_export(substr($target, strlen($root)), true)
			: var_export($target, true);
		file_put_contents($dir . '/status.php',
			"<?php\n// Installed by the orderbridge module: the status endpoint for two-way sync.\n"
			. 'require ' . $require . ";\n");
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
	 * ROISTAT_VISIT for each person type: a service property (UTIL), so that the buyer never
	 * sees it in the checkout form, while managers see it in the order.
	 */
	private function createVisitProperties()
	{
		foreach ($this->personTypesWithout(self::VISIT_PROPERTY) as $typeId) {
			\CSaleOrderProps::Add([
				'PERSON_TYPE_ID' => $typeId,
				'NAME' => Loc::getMessage('ORDERBRIDGE_VISIT_PROPERTY_NAME') ?: 'Roistat visit',
				'TYPE' => 'TEXT',
				'REQUIED' => 'N', // sic: the old API's spelling
				'DEFAULT_VALUE' => '',
				'SORT' => 10000,
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
				'CODE' => self::VISIT_PROPERTY,
				'ACTIVE' => 'Y',
				'UTIL' => 'Y',
				'MULTIPLE' => 'N',
			]);
		}
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
